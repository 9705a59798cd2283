/**
 * Unpacks an output sandbox from a worker node: regular files and directories only, never links
 * (node-tar itself refuses absolute paths and `..`). The archive comes from a payload, so it is
 * hostile: anything node-tar cannot read is a SANDBOX_UNSAFE error naming why.
 */
import { mkdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { PilothouseError } from '../shared/errors.ts';

const ENTRY_CONFLICTS = new Set(['EEXIST', 'ENOTDIR', 'EISDIR']);

export async function unpackOutputSandbox(archive: Readable, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  try {
    await pipeline(
      archive,
      tar.x({
        cwd: dir,
        strict: true,
        filter: (entryPath, entry) => {
          const type = 'type' in entry ? entry.type : 'File';
          if (type === 'File') files.push(entryPath);
          return type === 'File' || type === 'Directory';
        },
      }),
    );
  } catch (error) {
    // The archive's own faults (tar or gzip); a download cut off midway is not one.
    const code = String((error as NodeJS.ErrnoException).code ?? '');
    if (ENTRY_CONFLICTS.has(code)) {
      // Entries that contradict each other (a file named like a directory another entry needs).
      throw new PilothouseError(
        'SANDBOX_UNSAFE',
        `the output sandbox holds entries that conflict with each other or with files in ${dir}: ${(error as Error).message}`,
        {},
        { cause: error },
      );
    }
    if (!/^(TAR_|Z_)/.test(code)) throw error;
    throw new PilothouseError(
      'SANDBOX_UNSAFE',
      `the output sandbox is not a readable tar.gz archive: ${(error as Error).message}`,
      {},
      { cause: error },
    );
  }
  return files.sort();
}
