/** Unpacks an output sandbox from a worker node: regular files and directories only, never links. */
import { mkdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';

export async function unpackOutputSandbox(archive: Readable, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
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
  return files.sort();
}
