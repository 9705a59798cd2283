/**
 * The pilot's compiled code, kept for the next pilots on the same node. Every batch job on a node is a
 * pilot started from nothing, and V8 compiling the bundle is about a third of what a pilot costs
 * before its first offer. V8 can hand back its compiled code of a script (a "code cache") and take it
 * again at the next compile, which then skips parsing and compiling; the loader of dist/pilot.mjs
 * keeps that cache in a file named after the bundle's content, the Node.js version and the CPU
 * architecture, so a new bundle or another Node.js never meets an old cache (V8 also refuses a cache
 * that is not its own, and the loader then compiles as usual and writes a new one).
 *
 * A code cache is code: it is read only from a plain file (not a link, opened without following one)
 * owned by this user and writable by nobody else, no larger than a bundle's cache can be; a file that
 * fails any of this is left alone and the bundle is compiled from source. Written whole: a private
 * temporary file renamed over the old one, so a reader never sees half of it.
 */
import { closeSync, constants, fstatSync, openSync, readSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A pilot bundle's code cache is ~1 MB; a larger file is not one. */
export const MAX_CODE_CACHE_BYTES = 16 * 1024 * 1024;

/** `PILOTHOUSE_CODE_CACHE`: unset or empty = the temporary directory; `off` = no cache; else a directory. */
export const CODE_CACHE_ENV = 'PILOTHOUSE_CODE_CACHE';

/**
 * Where this bundle's cache lives for this user, Node.js and CPU architecture; null when the cache is
 * turned off.
 */
export function codeCacheFile(
  sourceId: string,
  env: NodeJS.ProcessEnv = process.env,
  identity: { uid: number | string; nodeVersion: string; arch: string } = {
    uid: process.getuid?.() ?? 'user',
    nodeVersion: process.version,
    arch: process.arch,
  },
): string | null {
  const setting = env[CODE_CACHE_ENV] ?? '';
  if (setting === 'off') return null;
  const directory = setting === '' ? os.tmpdir() : setting;
  return path.join(
    directory,
    `pilothouse-code-${identity.uid}-${sourceId}-${identity.nodeVersion}-${identity.arch}.bin`,
  );
}

/** The kept cache, or undefined when there is none this pilot may trust. Never throws. */
export function readCodeCache(file: string): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined; // absent, a link, or unreadable
  }
  try {
    const stats = fstatSync(fd);
    const ownUid = process.getuid?.() ?? stats.uid;
    if (!stats.isFile() || stats.uid !== ownUid || (stats.mode & 0o022) !== 0) return undefined;
    if (stats.size === 0 || stats.size > MAX_CODE_CACHE_BYTES) return undefined;
    const data = Buffer.allocUnsafe(stats.size);
    let filled = 0;
    while (filled < data.length) {
      const read = readSync(fd, data, filled, data.length - filled, filled);
      if (read === 0) return undefined; // shrank while being read: not the file that was checked
      filled += read;
    }
    return data;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Keeps `data` as the cache; false when it could not (the next pilot compiles from source). */
export function writeCodeCache(file: string, data: Buffer): boolean {
  if (data.length === 0 || data.length > MAX_CODE_CACHE_BYTES) return false;
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, data, { mode: 0o600, flag: 'wx' });
    renameSync(temporary, file);
    return true;
  } catch {
    try {
      unlinkSync(temporary);
    } catch {
      // never created
    }
    return false;
  }
}
