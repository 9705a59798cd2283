/**
 * The uids a root pilot hands to its running jobs, one each, so that no job can read another's files
 * or the pilot's. The uids need no account: the kernel checks numbers, and the job's HOME is its
 * directory. A uid goes back to the pool when its job ends (its processes are gone by then).
 */
import { chmod, lchown, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { PilothouseError } from '../shared/errors.ts';

export class UidPool {
  // (A uid is given back only through reclaim: its processes and files must be gone first.)
  readonly #first: number;
  readonly #last: number;
  readonly #taken = new Set<number>();

  constructor(first: number, last: number) {
    this.#first = first;
    this.#last = last;
  }

  /** The lowest free uid. */
  take(): number {
    for (let uid = this.#first; uid <= this.#last; uid += 1) {
      if (!this.#taken.has(uid)) {
        this.#taken.add(uid);
        return uid;
      }
    }
    throw new PilothouseError(
      'INTERNAL',
      `all ${this.#last - this.#first + 1} job uids (${this.#first}-${this.#last}) are in use: widen --job-uids`,
    );
  }

  /**
   * The job is over: anything still running under its uid (a daemon that left the process tree) is
   * killed, and its directory, if kept, becomes the pilot's again, so that the next job given this
   * uid cannot read it. Then the uid is free.
   */
  async reclaim(dir: string, uid: number): Promise<void> {
    try {
      await killAllOf(uid);
      await chownTree(dir, process.getuid?.() ?? 0).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
    } finally {
      this.#taken.delete(uid);
    }
  }

  get inUse(): number {
    return this.#taken.size;
  }

  /** Makes the job directory (and everything in it, links not followed) the uid's, closed to others. */
  async handOver(dir: string, uid: number): Promise<void> {
    await chownTree(dir, uid);
    await chmod(dir, 0o700);
  }
}

async function killAllOf(uid: number): Promise<void> {
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const status = await readFile(`/proc/${name}/status`, 'utf8').catch(() => '');
    const real = /^Uid:\s+(\d+)/m.exec(status)?.[1];
    if (real !== undefined && Number(real) === uid) {
      try {
        process.kill(Number(name), 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
  }
}

async function chownTree(dir: string, uid: number): Promise<void> {
  await lchown(dir, uid, uid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(full, uid);
    else await lchown(full, uid, uid);
  }
}
