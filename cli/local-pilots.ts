/**
 * Runs pilots as child processes on this machine (for `up` and `demo`): the same dist/pilot.mjs a
 * worker node would run. Pilots that end (idle timeout) are replaced while the pool is running.
 * The site director's local backend will take this over; until then this is the local "site".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../shared/logger.ts';

export interface LocalPilotPoolOptions {
  matcherUrl: string;
  tokenFile: string;
  dataDir: string;
  count: number;
  site: string;
  coresPerPilot?: number | undefined;
  idleTimeoutSec: number;
  logger: Logger;
}

/** dist/pilot.mjs beside the running bundle, or in the checkout when running from source. */
export function locatePilotBundle(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'pilot.mjs'), path.resolve(here, '..', 'dist', 'pilot.mjs')];
  const found = candidates.find((candidate) => existsSync(candidate));
  if (!found) throw new Error(`dist/pilot.mjs not found (looked in ${candidates.join(', ')}); run npm run build`);
  return found;
}

export class LocalPilotPool {
  readonly #options: LocalPilotPoolOptions;
  readonly #bundle = locatePilotBundle();
  readonly #children = new Set<ChildProcess>();
  #started = 0;
  #stopping = false;

  constructor(options: LocalPilotPoolOptions) {
    this.#options = options;
  }

  async start(): Promise<void> {
    await mkdir(path.join(this.#options.dataDir, 'logs'), { recursive: true });
    for (let i = 0; i < this.#options.count; i += 1) this.#spawnOne();
  }

  #spawnOne(): void {
    const o = this.#options;
    this.#started += 1;
    const name = `pilot-${this.#started}`;
    const args = [
      this.#bundle,
      '--matcher',
      o.matcherUrl,
      '--token-file',
      o.tokenFile,
      '--site',
      o.site,
      '--workdir',
      path.join(o.dataDir, 'work', name),
      '--idle-timeout-sec',
      String(o.idleTimeoutSec),
      '--stamp',
      `${name}-${process.pid}-${Date.now().toString(36)}`,
    ];
    if (o.coresPerPilot !== undefined) args.push('--cores', String(o.coresPerPilot));
    const log = createWriteStream(path.join(o.dataDir, 'logs', `${name}.log`));
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    this.#children.add(child);
    o.logger.debug({ pilot: name, pid: child.pid }, 'local pilot started');
    child.on('exit', (code, signal) => {
      this.#children.delete(child);
      o.logger.debug({ pilot: name, code, signal }, 'local pilot ended');
      if (!this.#stopping) this.#spawnOne();
    });
  }

  get running(): number {
    return this.#children.size;
  }

  /** SIGTERM to every pilot (they drain), SIGKILL after the grace period. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopping = true;
    await Promise.all(
      [...this.#children].map(async (child) => {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
