/**
 * A job's local input files as an uploaded sandbox. The files (and directories) are packed flat under
 * their own names, as DIRAC lays out an input sandbox, into a deterministic tar.gz: entries sorted, no
 * times, owners or devices recorded. So the same files always hash the same, and a sandbox the matcher
 * already has for the caller's VO is not sent again, whether 1,000 jobs of one submission share it or
 * an earlier submission sent it.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, rm, stat, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { PilothouseError } from '../shared/errors.ts';
import { formatByteSize } from '../shared/byte-size.ts';
import type { MatcherClient } from './client.ts';
import { createProgress } from './progress.ts';

/** Uploads larger than this show a progress bar. */
const PROGRESS_ABOVE_BYTES = 4 * 1024 * 1024;

export interface PackedSandbox {
  ref: string;
  bytes: Buffer;
}

/** Packs `files` (relative to `baseDir`, or absolute) under their base names. */
export async function packInputFiles(baseDir: string, files: readonly string[]): Promise<PackedSandbox> {
  const staging = await mkdtemp(path.join(os.tmpdir(), 'ph-isb-'));
  try {
    const names = new Map<string, string>();
    for (const file of files) {
      const source = path.resolve(baseDir, file);
      const name = path.basename(source);
      const earlier = names.get(name);
      if (earlier !== undefined && earlier !== source) {
        throw new PilothouseError(
          'VALIDATION_FAILED',
          `input files ${earlier} and ${source} have the same name ${name}`,
          {
            field: 'inputSandbox',
          },
        );
      }
      try {
        await lstat(source);
      } catch {
        throw new PilothouseError('VALIDATION_FAILED', `input file ${file} does not exist (looked for ${source})`, {
          field: 'inputSandbox',
        });
      }
      names.set(name, source);
      if (earlier === undefined) await symlink(source, path.join(staging, name));
    }
    const entries = (await walk(staging, [...names.keys()])).sort();
    const archive = path.join(staging, '..', `${path.basename(staging)}.tar.gz`);
    try {
      await tar.c(
        { cwd: staging, file: archive, gzip: true, portable: true, noMtime: true, follow: true, noDirRecurse: true },
        entries,
      );
      const bytes = await readFile(archive);
      return { ref: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, bytes };
    } finally {
      await rm(archive, { force: true });
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Every entry under the staged names (links followed), so that the archive lists them in sorted order. */
async function walk(root: string, names: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const name of names) {
    out.push(name);
    const target = path.join(root, name);
    if ((await stat(target)).isDirectory()) {
      const children = await readdir(target);
      out.push(
        ...(await walk(
          root,
          children.map((child) => path.join(name, child)),
        )),
      );
    }
  }
  return out;
}

/** Uploads the sandboxes the matcher does not have yet for the caller's VO; returns how many went up. */
export async function ensureUploaded(client: MatcherClient, sandboxes: readonly PackedSandbox[]): Promise<number> {
  if (sandboxes.length === 0) return 0;
  const { body } = await client.json<{ missing: string[] }>('POST', '/api/sandboxes/missing', {
    sandboxes: sandboxes.map((sandbox) => sandbox.ref),
  });
  const missing = new Set(body.missing);
  let uploaded = 0;
  for (const sandbox of sandboxes) {
    if (!missing.has(sandbox.ref)) continue;
    const size = sandbox.bytes.length;
    const progress =
      size > PROGRESS_ABOVE_BYTES
        ? createProgress(`uploading ${sandbox.ref.slice(0, 19)} (${formatByteSize(size)})`, size)
        : null;
    await client.sendBytes('PUT', `/api/sandboxes/${sandbox.ref}`, sandbox.bytes, 'application/gzip', (sent) =>
      progress?.update(sent),
    );
    progress?.finish();
    uploaded += 1;
  }
  return uploaded;
}
