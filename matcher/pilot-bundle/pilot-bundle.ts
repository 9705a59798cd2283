/**
 * The pilot bundle (dist/pilot.mjs) as the matcher serves it to pilot wrappers: its bytes and their
 * sha256. The wrapper checks the sha256 that its site director put into it against what it downloaded,
 * so a bundle changed on the way (or on the matcher's disk after the director asked) never runs. The
 * digest is recomputed when the file's size or modification time changes (a redeploy).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { PilothouseError } from '../../shared/errors.ts';
import type { PilotBundleInfo } from '../../shared/protocol/site-director.ts';

/** dist/pilot.mjs beside the running cli bundle, or in the checkout when the matcher runs from source. */
export function defaultPilotBundlePath(): string | null {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [
    path.join(here, 'pilot.mjs'), // dist/cli.mjs → dist/pilot.mjs
    path.resolve(here, '..', '..', 'dist', 'pilot.mjs'), // matcher/pilot-bundle/ → dist/
  ];
  return candidates.find((candidate) => existsSync(candidate)) ?? null;
}

export class PilotBundle {
  readonly #path: string | null;
  #cached: { key: string; info: PilotBundleInfo } | null = null;

  constructor(bundlePath: string | null) {
    this.#path = bundlePath;
  }

  async info(): Promise<PilotBundleInfo> {
    const file = this.#requirePath();
    let stats;
    try {
      stats = await stat(file);
    } catch (error) {
      throw unavailable(`${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    const key = `${stats.size}:${stats.mtimeMs}`;
    if (this.#cached?.key !== key) {
      const bytes = await readFile(file);
      this.#cached = {
        key,
        info: { sha256: createHash('sha256').update(bytes).digest('hex'), sizeBytes: bytes.length, path: file },
      };
    }
    return this.#cached.info;
  }

  async open(): Promise<{ info: PilotBundleInfo; stream: Readable }> {
    const info = await this.info();
    return { info, stream: createReadStream(info.path) };
  }

  #requirePath(): string {
    if (this.#path === null)
      throw unavailable('no pilot bundle is configured (build dist/pilot.mjs or pass --pilot-bundle)');
    return this.#path;
  }
}

function unavailable(message: string): PilothouseError {
  return new PilothouseError('PILOT_BUNDLE_UNAVAILABLE', `the pilot bundle cannot be served: ${message}`);
}
