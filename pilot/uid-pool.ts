/**
 * The uids a root pilot hands to its running jobs, one each, so that no job can read another's files
 * or the pilot's. The uids need no account: the kernel checks numbers, and the job's HOME is its
 * directory. A uid goes back to the pool when its job ends (its processes are gone by then).
 *
 * Several root pilots on one node share the range: a uid is claimed node-wide by creating a lock file
 * named after it (exclusive create, holding the pilot's pid; a lock whose pid is dead is stale), and a
 * uid some process still runs under is never handed out.
 */
export const DEFAULT_UID_LOCK_DIR = '/run/pilothouse/job-uids';

import { chmod, lchown, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PilothouseError } from '../shared/errors.ts';
import { isAlive } from './process-tree.ts';

export class UidPool {
  // (A uid is given back only through reclaim: its processes and files must be gone first.)
  readonly #first: number;
  readonly #last: number;
  readonly #lockDir: string;
  readonly #taken = new Set<number>();

  constructor(first: number, last: number, lockDir = DEFAULT_UID_LOCK_DIR) {
    this.#first = first;
    this.#last = last;
    this.#lockDir = lockDir;
  }

  /** The lowest uid free on this node. */
  async take(): Promise<number> {
    await mkdir(this.#lockDir, { recursive: true, mode: 0o700 });
    const busy = await processesByRealUid();
    for (let uid = this.#first; uid <= this.#last; uid += 1) {
      if (this.#taken.has(uid) || busy.has(uid)) continue;
      if (await this.#claim(uid)) {
        this.#taken.add(uid);
        return uid;
      }
    }
    throw new PilothouseError(
      'INTERNAL',
      `all ${this.#last - this.#first + 1} job uids (${this.#first}-${this.#last}) are in use: widen --job-uids`,
    );
  }

  async #claim(uid: number): Promise<boolean> {
    const lock = path.join(this.#lockDir, String(uid));
    for (let tries = 0; tries < 2; tries += 1) {
      try {
        await writeFile(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) return false;
      await rm(lock, { force: true }); // stale: its pilot is gone
    }
    return false;
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
      await rm(path.join(this.#lockDir, String(uid)), { force: true });
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

/** The pids running under each real uid, from one pass over /proc. */
export async function processesByRealUid(): Promise<Map<number, number[]>> {
  const byUid = new Map<number, number[]>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const status = await readFile(`/proc/${name}/status`, 'utf8').catch(() => '');
    const real = /^Uid:\s+(\d+)/m.exec(status)?.[1];
    if (real === undefined) continue;
    const pids = byUid.get(Number(real)) ?? [];
    pids.push(Number(name));
    byUid.set(Number(real), pids);
  }
  return byUid;
}

async function killAllOf(uid: number): Promise<void> {
  for (const pid of (await processesByRealUid()).get(uid) ?? []) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
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
