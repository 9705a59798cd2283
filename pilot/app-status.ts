/**
 * The payload's own status line: it writes lines to the file named by PILOTHOUSE_APP_STATUS_FILE and
 * the pilot forwards the last non-empty one as the job's application status. Only the file's tail is
 * read, so a payload that writes a huge file costs nothing.
 */
import { open } from 'node:fs/promises';

export const APP_STATUS_FILE_NAME = '.pilothouse-app-status';
const TAIL_BYTES = 4096;
/** The protocol's cap on applicationStatus. */
export const MAX_APP_STATUS_CHARS = 1024;

/** The last non-empty line of the file, or null when the file is missing or holds no text. */
export async function readApplicationStatus(file: string): Promise<string | null> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return null;
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const lines = buffer
      .toString('utf8')
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== '');
    const last = lines.at(-1);
    return last === undefined ? null : last.slice(0, MAX_APP_STATUS_CHARS);
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}
