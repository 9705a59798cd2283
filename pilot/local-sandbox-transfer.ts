/**
 * Sandboxes kept in a local directory instead of the matcher, for `pilothouse run` (a job tried on
 * this machine with no server): input sandboxes are put there before the job starts, and the output
 * sandbox lands there when it ends. Checksums are verified as the matcher would.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PilothouseError } from '../shared/errors.ts';
import type { SandboxTransfer } from './sandbox-transfer.ts';

const SHA256_REF = /^sha256:([0-9a-f]{64})$/;

function hexOf(ref: string): string {
  const match = SHA256_REF.exec(ref);
  if (!match) throw new PilothouseError('VALIDATION_FAILED', `bad sandbox reference ${ref}`);
  return match[1] as string;
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export class LocalSandboxTransfer implements SandboxTransfer {
  readonly #dir: string;
  /** The references uploaded (the job's output sandbox), in order. */
  readonly uploaded: string[] = [];

  constructor(dir: string) {
    this.#dir = dir;
  }

  /** The file a sandbox is kept in. */
  fileOf(ref: string): string {
    return path.join(this.#dir, `${hexOf(ref)}.tar.gz`);
  }

  /** Keeps `bytes` as a sandbox, as an upload to the matcher would. */
  async put(ref: string, bytes: Buffer): Promise<void> {
    if (createHash('sha256').update(bytes).digest('hex') !== hexOf(ref)) {
      throw new PilothouseError('SANDBOX_CHECKSUM_MISMATCH', `the bytes given for ${ref} have another checksum`);
    }
    await mkdir(this.#dir, { recursive: true });
    await writeFile(this.fileOf(ref), bytes);
  }

  async download(ref: string, _jobToken: string, destFile: string): Promise<void> {
    const source = this.fileOf(ref);
    await copyFile(source, destFile).catch((error: NodeJS.ErrnoException) => {
      throw new PilothouseError('SANDBOX_NOT_FOUND', `sandbox ${ref} is not in ${this.#dir} (${error.code})`);
    });
    if ((await sha256Of(destFile)) !== hexOf(ref)) {
      throw new PilothouseError('SANDBOX_CHECKSUM_MISMATCH', `sandbox ${ref} does not match its checksum`);
    }
  }

  async upload(file: string, ref: string): Promise<void> {
    if ((await sha256Of(file)) !== hexOf(ref)) {
      throw new PilothouseError('SANDBOX_CHECKSUM_MISMATCH', `the output sandbox does not match ${ref}`);
    }
    await mkdir(this.#dir, { recursive: true });
    await copyFile(file, this.fileOf(ref));
    this.uploaded.push(ref);
  }
}
