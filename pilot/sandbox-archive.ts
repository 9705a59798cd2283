/**
 * Sandbox archives on the pilot: checking and unpacking input sandboxes (tar.gz from users, so
 * hostile until proven otherwise), packing output sandboxes, and hashing files.
 *
 * Unpacking is two passes over the archive. The first lists every entry and refuses the archive as a
 * whole (SANDBOX_UNSAFE / SANDBOX_TOO_LARGE) if any entry is not a plain file, directory or link,
 * has an absolute path or a `..` segment, or is a link whose target leaves the directory, passes
 * through another symlink (in the archive or already on disk), or when the entry count or unpacked
 * size exceeds the caps. Only then does the second pass extract, with node-tar's own protections on.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import type { ReadEntry } from 'tar';
import { PilothouseError } from '../shared/errors.ts';

/** tar is loaded when a sandbox is first handled, not at the pilot's start (which it would slow). */
const loadTar = (): Promise<typeof import('tar')> => import('tar');

export interface UnpackLimits {
  maxBytes: number;
  maxEntries: number;
}

export interface UnpackSummary {
  entries: number;
  bytes: number;
}

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

interface LinkRecord {
  entry: string;
  /** The link's own path, in segments. */
  segments: string[];
  /** Segments of the directory the target is resolved from. */
  base: string[];
  target: string;
}

function unsafe(message: string, entry: string): PilothouseError {
  return new PilothouseError('SANDBOX_UNSAFE', message, { entry });
}

/** Splits an archive path into its segments, refusing absolute paths and `..`. */
function entrySegments(raw: string): string[] {
  if (raw.includes('\0')) throw unsafe(`entry name holds a NUL byte`, raw);
  if (raw.startsWith('/') || /^[A-Za-z]:[\\/]/.test(raw) || raw.startsWith('\\')) {
    throw unsafe(`entry ${raw} has an absolute path`, raw);
  }
  const segments = raw.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) throw unsafe(`entry ${raw} climbs out with '..'`, raw);
  return segments;
}

/**
 * Lists the archive and refuses it unless every entry is safe to write under `destDir` (which may
 * already hold the files of an earlier sandbox of the same job).
 */
export async function inspectArchive(file: string, destDir: string, limits: UnpackLimits): Promise<UnpackSummary> {
  let entries = 0;
  let bytes = 0;
  let failure: PilothouseError | null = null;
  const paths: string[][] = [];
  const symlinks = new Set<string>();
  const links: LinkRecord[] = [];

  const check = (entry: ReadEntry): void => {
    entries += 1;
    if (entries > limits.maxEntries)
      throw new PilothouseError('SANDBOX_TOO_LARGE', `sandbox holds more than ${limits.maxEntries} entries`);
    if (!ALLOWED_TYPES.has(entry.type))
      throw unsafe(`entry ${entry.path} is a ${entry.type}, not a file, directory or link`, entry.path);
    const segments = entrySegments(entry.path);
    if (FILE_TYPES.has(entry.type)) {
      bytes += entry.size ?? 0;
      if (bytes > limits.maxBytes)
        throw new PilothouseError('SANDBOX_TOO_LARGE', `sandbox unpacks to more than ${limits.maxBytes} bytes`);
    }
    paths.push(segments);
    if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
      const target = entry.linkpath ?? '';
      if (target === '' || target.startsWith('/') || target.includes('\0')) {
        throw unsafe(
          `link ${entry.path} points to ${target === '' ? 'nothing' : target}, outside the sandbox`,
          entry.path,
        );
      }
      // A symlink's target is relative to the link's directory, a hard link's to the archive root.
      const base = entry.type === 'SymbolicLink' ? segments.slice(0, -1) : [];
      links.push({ entry: entry.path, segments, base, target });
      if (entry.type === 'SymbolicLink') symlinks.add(segments.join('/'));
    }
  };

  const tar = await loadTar();
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (entry) => {
        if (failure !== null) return;
        try {
          check(entry);
        } catch (error) {
          failure = error as PilothouseError;
        }
      },
    });
  } catch (error) {
    if (failure !== null) throw failure;
    const message = (error as Error).message;
    // node-tar stops a gzip stream that inflates more than 1000-fold: a compression bomb.
    if (/decompression ratio/i.test(message)) {
      throw new PilothouseError(
        'SANDBOX_TOO_LARGE',
        `sandbox is a compression bomb (${message})`,
        {},
        { cause: error },
      );
    }
    throw new PilothouseError('SANDBOX_UNSAFE', `not a readable tar.gz archive: ${message}`, {}, { cause: error });
  }
  if (failure !== null) throw failure;

  const isSymlink = async (relative: string): Promise<boolean> => {
    if (symlinks.has(relative)) return true;
    try {
      return (await lstat(path.join(destDir, relative))).isSymbolicLink();
    } catch {
      return false;
    }
  };
  // No entry may be written through a symlink (one from this archive or one already on disk).
  for (const segments of paths) {
    for (let i = 1; i < segments.length; i += 1) {
      const prefix = segments.slice(0, i).join('/');
      if (await isSymlink(prefix))
        throw unsafe(`entry ${segments.join('/')} would be written through symlink ${prefix}`, segments.join('/'));
    }
  }
  // Link targets are resolved step by step: they must stay inside and not pass through a symlink.
  for (const link of links) {
    assertNotOwnAncestor(link);
    const stack = [...link.base];
    const steps = link.target.split('/').filter((segment) => segment !== '' && segment !== '.');
    for (const [index, step] of steps.entries()) {
      if (step === '..') {
        if (stack.length === 0)
          throw unsafe(`link ${link.entry} points to ${link.target}, outside the sandbox`, link.entry);
        stack.pop();
        continue;
      }
      stack.push(step);
      if (index < steps.length - 1 && (await isSymlink(stack.join('/')))) {
        throw unsafe(`link ${link.entry} points through symlink ${stack.join('/')}`, link.entry);
      }
    }
  }
  return { entries, bytes };
}

/** `a/b` lies at or under `a`. */
function isAtOrUnder(path: string[], ancestor: string[]): boolean {
  return ancestor.length <= path.length && ancestor.every((segment, i) => path[i] === segment);
}

/** Lexically resolved segments of `steps` from `base`, or null when they climb above the root. */
function resolveSteps(base: string[], target: string): string[] | null {
  const stack = [...base];
  for (const step of target.split('/').filter((segment) => segment !== '' && segment !== '.')) {
    if (step !== '..') stack.push(step);
    else if (stack.pop() === undefined) return null;
  }
  return stack;
}

/**
 * A link must not name itself, a directory it lies in, or a path under itself. Such an entry has no
 * meaning (GNU tar and libarchive skip it), and node-tar 7.5 never finishes extracting one: it waits on its own path
 * reservation (found by test/fuzz/tar-archive.fuzz.int.test.ts). node-tar reserves a symlink's target
 * as written, so both readings are checked: from the link's directory and from the archive root.
 */
function assertNotOwnAncestor(link: LinkRecord): void {
  for (const target of [resolveSteps(link.base, link.target), resolveSteps([], link.target)]) {
    // The sandbox root itself (a link to `.`) is no path node-tar reserves.
    if (
      target !== null &&
      target.length > 0 &&
      (isAtOrUnder(link.segments, target) || isAtOrUnder(target, link.segments))
    ) {
      throw unsafe(
        `link ${link.entry} points to ${link.target}: itself, a directory holding it or a path under it`,
        link.entry,
      );
    }
  }
}

/** Checks the archive, then extracts it into `destDir` (which must exist). */
export async function unpackSandbox(file: string, destDir: string, limits: UnpackLimits): Promise<UnpackSummary> {
  const summary = await inspectArchive(file, destDir, limits);
  const tar = await loadTar();
  try {
    await tar.x({
      file,
      cwd: destDir,
      strict: true,
      preservePaths: false,
      preserveOwner: false,
      filter: (_path, entry) => 'type' in entry && ALLOWED_TYPES.has(entry.type),
    });
  } catch (error) {
    throw new PilothouseError('SANDBOX_UNSAFE', `unpacking failed: ${(error as Error).message}`, {}, { cause: error });
  }
  return summary;
}

/** Writes `relativePaths` (under `sourceDir`) into a gzipped tar at `outFile`; links are stored, not followed. */
export async function packSandbox(sourceDir: string, relativePaths: readonly string[], outFile: string): Promise<void> {
  const tar = await loadTar();
  await tar.c({ gzip: true, file: outFile, cwd: sourceDir, portable: true, follow: false }, [...relativePaths]);
}

/** `sha256:<hex>` of a file's bytes. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
