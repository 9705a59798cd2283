/**
 * Content-addressed sandbox files under `<dataDir>/sandboxes/<2 hex>/<64 hex>.tar.gz`. An upload is
 * streamed to a temporary file while it is hashed; only bytes whose sha256 equals the announced one
 * are renamed into place, so a half-written or forged upload never becomes visible.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { PilothouseError } from '../../shared/errors.ts';
import { formatByteSize } from '../../shared/byte-size.ts';

export const SANDBOX_REF = /^sha256:([0-9a-f]{64})$/;

export function parseSandboxRef(ref: string): string {
  const match = SANDBOX_REF.exec(ref);
  if (!match?.[1])
    throw new PilothouseError('VALIDATION_FAILED', 'a sandbox is named sha256:<64 lowercase hex>', {
      field: 'sandbox',
    });
  return match[1];
}

export class SandboxStore {
  readonly #root: string;
  readonly #maxBytes: number;

  constructor(root: string, maxBytes: number) {
    this.#root = root;
    this.#maxBytes = maxBytes;
  }

  get maxBytes(): number {
    return this.#maxBytes;
  }

  tooLarge(): PilothouseError {
    return new PilothouseError('SANDBOX_TOO_LARGE', `a sandbox holds at most ${formatByteSize(this.#maxBytes)}`, {
      maxBytes: this.#maxBytes,
    });
  }

  #pathOf(sha256: string): string {
    return path.join(this.#root, sha256.slice(0, 2), `${sha256}.tar.gz`);
  }

  async has(sha256: string): Promise<boolean> {
    try {
      await stat(this.#pathOf(sha256));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Stores the stream if it hashes to `sha256`; returns its size. Existing content is kept. Past
   * `room.bytes` (default: the per-sandbox limit) the upload stops with `room.error()`.
   */
  async put(
    sha256: string,
    body: Readable,
    room: { bytes: number; error: () => PilothouseError } = { bytes: this.#maxBytes, error: () => this.tooLarge() },
  ): Promise<{ sizeBytes: number; created: boolean }> {
    const finalPath = this.#pathOf(sha256);
    await mkdir(path.dirname(finalPath), { recursive: true });
    const tempPath = `${finalPath}.${randomUUID()}.part`;
    const hash = createHash('sha256');
    let sizeBytes = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        sizeBytes += chunk.length;
        if (sizeBytes > room.bytes) {
          callback(room.error());
          return;
        }
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    try {
      await pipeline(body, meter, createWriteStream(tempPath, { flags: 'wx' }));
      const actual = hash.digest('hex');
      if (actual !== sha256) {
        throw new PilothouseError('SANDBOX_CHECKSUM_MISMATCH', `the uploaded bytes hash to sha256:${actual}`, {
          field: 'sandbox',
        });
      }
      if (await this.has(sha256)) return { sizeBytes, created: false };
      await rename(tempPath, finalPath);
      return { sizeBytes, created: true };
    } finally {
      await rm(tempPath, { force: true });
    }
  }

  /** Deletes the file (nothing when it is already gone). */
  async delete(sha256: string): Promise<void> {
    await rm(this.#pathOf(sha256), { force: true });
  }

  open(sha256: string): Readable {
    return createReadStream(this.#pathOf(sha256));
  }
}
