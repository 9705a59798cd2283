/**
 * The last bytes of a running payload's std.out and std.err, for heartbeats: read from the files the
 * payload writes (nothing is buffered in the pilot), and only handed out when they changed since the
 * last time, so a quiet job's heartbeats stay small.
 */
import { open } from 'node:fs/promises';
import type { OutputTail } from '../shared/protocol/messages.ts';

/** Bytes of each stream a tail carries (the matcher keeps the latest). */
export const OUTPUT_TAIL_BYTES = 4096;

/** The last `maxBytes` of a file as text, starting at a line when it was cut; '' when it cannot be read. */
export async function readFileTail(
  file: string,
  maxBytes = OUTPUT_TAIL_BYTES,
): Promise<{ text: string; size: number }> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return { text: '', size: -1 };
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    let text = buffer.toString('utf8');
    if (length < size) {
      // Cut inside the file: drop the partial first line (or the broken character it starts with).
      const newline = text.indexOf('\n');
      text = newline >= 0 && newline < text.length - 1 ? text.slice(newline + 1) : text.replace(/^\uFFFD+/, '');
    }
    return { text, size };
  } finally {
    await handle.close();
  }
}

export class OutputTailReader {
  readonly #stdoutFile: string;
  readonly #stderrFile: string;
  #sentSizes = '';

  constructor(stdoutFile: string, stderrFile: string) {
    this.#stdoutFile = stdoutFile;
    this.#stderrFile = stderrFile;
  }

  /** The tail when either file changed size since the last call (or always, when `force`). */
  async changed(force = false): Promise<OutputTail | undefined> {
    const [stdout, stderr] = await Promise.all([readFileTail(this.#stdoutFile), readFileTail(this.#stderrFile)]);
    const sizes = `${stdout.size}/${stderr.size}`;
    if (!force && sizes === this.#sentSizes) return undefined;
    this.#sentSizes = sizes;
    return { stdout: stdout.text, stderr: stderr.text };
  }
}
