/**
 * Payload isolation: what keeps one job from reading the pilot's credentials (token file, secret
 * file, the token in its memory and environment) or another job's directory on the same pilot.
 *
 *   bwrap      the payload runs in a bubblewrap container: its own mount, PID and IPC namespaces, the
 *              system directories read-only, a private /tmp, its job directory and nothing else of the
 *              pilot's working area; the pilot's credential files are masked even where they lie
 *              under a visible directory. Needs unprivileged user namespaces (or root).
 *   uid        (the pilot runs as root) each running job gets a uid of its own from a pool; its
 *              directory is 0700 and its; the pilot's files are root's.
 *   bwrap+uid  both: what a root pilot gets when bubblewrap works. bubblewrap runs as root (so it can
 *              reach a job directory below paths closed to other users) and hands over to the job's
 *              uid through util-linux's setpriv inside the container, with every capability dropped
 *              and no way to regain one (no_new_privs).
 *   none       the payload runs as the pilot, seeing what the pilot sees. Only when asked for.
 *
 * `auto` (the default) takes the strongest that works here and refuses to start when none does, so
 * that running unprotected is always someone's explicit choice.
 */
import { spawn } from 'node:child_process';
import { lstatSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { PilothouseError } from '../shared/errors.ts';
import { UidPool } from './uid-pool.ts';

export const ISOLATION_CHOICES = ['auto', 'bwrap', 'uid', 'none'] as const;
export type IsolationChoice = (typeof ISOLATION_CHOICES)[number];
export type IsolationName = 'bwrap' | 'bwrap+uid' | 'uid' | 'none';

/** Seen read-only inside the container when they exist (symlinks, e.g. merged /usr, are recreated). */
export const SYSTEM_PATHS = [
  '/usr',
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/etc',
  '/opt',
  '/cvmfs',
] as const;

export interface IsolationSettings {
  choice: IsolationChoice;
  /** The pilot's working area: masked inside containers (each job sees only its own directory). */
  workdir: string;
  /** Files a payload must never read (token file, secret file): masked where a container shows their directory. */
  secretFiles: readonly string[];
  /** Extra directories shown read-only inside containers (e.g. a data area). */
  readOnlyPaths: readonly string[];
  /** The uids handed to jobs when the pilot runs as root (first..last, inclusive). */
  jobUids: { first: number; last: number };
}

/** What this machine offers, found once at start (tests give their own). */
export interface IsolationHost {
  isRoot: boolean;
  /** bubblewrap's path when it can start a container here, else null. */
  bwrapPath: string | null;
  /** util-linux's setpriv (a root pilot's containers drop to the job's uid with it), else null. */
  setprivPath: string | null;
}

/** How one job's payload is started. */
export interface PayloadLaunch {
  file: string;
  args: string[];
  uid?: number;
  gid?: number;
  /** Variables set over the payload's environment (HOME inside its directory). */
  env: Record<string, string>;
}

/** One job's share of the isolation: prepared once its directory is filled, released when it ends. */
export interface JobConfinement {
  launch(executable: string, args: readonly string[]): PayloadLaunch;
  /** After the payload's tree is gone: whatever still runs under the job's uid is killed, the uid freed. */
  release(): Promise<void>;
}

export interface PayloadIsolation {
  readonly name: IsolationName;
  /** Takes a uid if the mode uses one, hands the job directory to it; call after the input is in. */
  confine(jobDir: string): Promise<JobConfinement>;
}

export function isolationUnavailable(message: string): PilothouseError {
  return new PilothouseError('CONFIG_INVALID', `--isolation: ${message}`, { field: '--isolation' });
}

/** Looks at this machine: root or not, and whether bubblewrap can start a container here. */
export async function probeIsolationHost(env: NodeJS.ProcessEnv = process.env): Promise<IsolationHost> {
  const isRoot = process.getuid?.() === 0;
  const searchPath = env['PATH'] ?? '/usr/bin:/bin';
  const setprivPath = isRoot ? findOnPath('setpriv', searchPath) : null;
  const bwrapPath = findOnPath('bwrap', searchPath);
  if (bwrapPath === null) return { isRoot, bwrapPath: null, setprivPath };
  // Not spawnSync: the pilot probes the node, the batch system and its isolation at the same time.
  const containerStarts = await new Promise<boolean>((resolve) => {
    const probe = spawn(
      bwrapPath,
      ['--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', '--unshare-pid', '--die-with-parent', 'true'],
      { stdio: 'ignore', timeout: 10_000 },
    );
    probe.once('error', () => resolve(false));
    probe.once('exit', (code) => resolve(code === 0));
  });
  return { isRoot, bwrapPath: containerStarts ? bwrapPath : null, setprivPath };
}

/** Picks the mode for `choice` on `host`; a mode this machine cannot give is a CONFIG_INVALID naming why. */
export function resolveIsolation(settings: IsolationSettings, host: IsolationHost): PayloadIsolation {
  const { choice } = settings;
  if (choice === 'none') return NO_ISOLATION;
  if (choice === 'uid' && !host.isRoot) {
    throw isolationUnavailable('uid needs the pilot to run as root (it hands each job a uid of its own)');
  }
  if (choice === 'bwrap' && host.bwrapPath === null) {
    throw isolationUnavailable(
      'bwrap: bubblewrap is not installed or cannot create namespaces here (install the bubblewrap package; check that unprivileged user namespaces are allowed)',
    );
  }
  if (choice === 'bwrap' && host.isRoot && host.setprivPath === null) {
    throw isolationUnavailable(
      "bwrap as root needs util-linux's setpriv to drop to the job's uid, and it is not on PATH",
    );
  }
  if (choice === 'auto' && host.bwrapPath === null && !host.isRoot) {
    throw isolationUnavailable(
      'no isolation is available: bubblewrap is missing or cannot create namespaces, and the pilot is not root (for a uid per job). Install bubblewrap, run the pilot as root, or pass --isolation none to run payloads as the pilot itself',
    );
  }
  const pool = host.isRoot ? new UidPool(settings.jobUids.first, settings.jobUids.last) : null;
  const containers = host.bwrapPath !== null && (!host.isRoot || host.setprivPath !== null);
  if (choice === 'uid' || !containers) {
    checkReachable(settings.workdir);
    return new UidIsolation(pool as UidPool);
  }
  const dropTo = host.isRoot ? (host.setprivPath as string) : null;
  return new BwrapIsolation(host.bwrapPath as string, settings, pool, dropTo, systemEntries());
}

class NoIsolation implements PayloadIsolation {
  readonly name = 'none';
  async confine(): Promise<JobConfinement> {
    return {
      launch: (executable, args) => ({ file: executable, args: [...args], env: {} }),
      release: async () => undefined,
    };
  }
}

export const NO_ISOLATION: PayloadIsolation = new NoIsolation();

class UidIsolation implements PayloadIsolation {
  readonly name = 'uid';
  readonly #pool: UidPool;
  constructor(pool: UidPool) {
    this.#pool = pool;
  }
  async confine(jobDir: string): Promise<JobConfinement> {
    const uid = await this.#pool.take();
    await this.#pool.handOver(jobDir, uid).catch(async (error: unknown) => {
      await this.#pool.reclaim(jobDir, uid);
      throw error;
    });
    return {
      launch: (executable, args) => ({ file: executable, args: [...args], uid, gid: uid, env: { HOME: jobDir } }),
      release: () => this.#pool.reclaim(jobDir, uid),
    };
  }
}

type SystemEntry = { path: string; kind: 'dir' } | { path: string; kind: 'symlink'; target: string };

function systemEntries(): SystemEntry[] {
  const entries: SystemEntry[] = [];
  for (const entry of SYSTEM_PATHS) {
    try {
      const stats = lstatSync(entry);
      if (stats.isSymbolicLink()) entries.push({ path: entry, kind: 'symlink', target: readlinkSync(entry) });
      else if (stats.isDirectory()) entries.push({ path: entry, kind: 'dir' });
    } catch {
      // Not on this machine.
    }
  }
  return entries;
}

class BwrapIsolation implements PayloadIsolation {
  readonly name: IsolationName;
  readonly #bwrap: string;
  readonly #settings: IsolationSettings;
  readonly #pool: UidPool | null;
  readonly #setpriv: string | null;
  readonly #system: SystemEntry[];

  constructor(
    bwrap: string,
    settings: IsolationSettings,
    pool: UidPool | null,
    setpriv: string | null,
    system: SystemEntry[],
  ) {
    this.#bwrap = bwrap;
    this.#settings = settings;
    this.#pool = pool;
    this.#setpriv = setpriv;
    this.#system = system;
    this.name = pool === null ? 'bwrap' : 'bwrap+uid';
  }

  async confine(jobDir: string): Promise<JobConfinement> {
    const pool = this.#pool;
    const uid = pool === null ? null : await pool.take();
    if (pool !== null && uid !== null) {
      await pool.handOver(jobDir, uid).catch(async (error: unknown) => {
        await pool.reclaim(jobDir, uid);
        throw error;
      });
    }
    const prefix = bwrapArguments({
      system: this.#system,
      readOnlyPaths: this.#settings.readOnlyPaths,
      workdir: this.#settings.workdir,
      secretFiles: this.#settings.secretFiles,
      jobDir,
    });
    const dropToJobUid =
      uid === null || this.#setpriv === null
        ? []
        : [
            this.#setpriv,
            `--reuid=${uid}`,
            `--regid=${uid}`,
            '--clear-groups',
            '--inh-caps=-all',
            '--bounding-set=-all',
            '--no-new-privs',
            '--',
          ];
    return {
      launch: (executable, args) => ({
        file: this.#bwrap,
        args: [...prefix, '--', ...dropToJobUid, executable, ...args],
        env: { HOME: jobDir, TMPDIR: '/tmp' },
      }),
      release: async () => {
        if (pool !== null && uid !== null) await pool.reclaim(jobDir, uid);
      },
    };
  }
}

/**
 * bubblewrap's arguments for one job (before `--` and the command). Order matters: later mounts go
 * over earlier ones, so the working area is hidden under an empty tmpfs and then the job directory
 * alone is bound back at its own path (the payload sees the same paths as the pilot).
 */
export function bwrapArguments(spec: {
  system: readonly SystemEntry[];
  readOnlyPaths: readonly string[];
  workdir: string;
  secretFiles: readonly string[];
  jobDir: string;
}): string[] {
  const args: string[] = [];
  const shown: string[] = [];
  for (const entry of spec.system) {
    if (entry.kind === 'symlink') args.push('--symlink', entry.target, entry.path);
    else {
      args.push('--ro-bind', entry.path, entry.path);
      shown.push(entry.path);
    }
  }
  for (const extra of spec.readOnlyPaths) {
    args.push('--ro-bind', extra, extra);
    shown.push(extra);
  }
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--tmpfs', spec.workdir);
  for (const file of spec.secretFiles) {
    if (shown.some((dir) => isInside(file, dir))) args.push('--ro-bind', '/dev/null', file);
  }
  args.push(
    '--bind',
    spec.jobDir,
    spec.jobDir,
    '--chdir',
    spec.jobDir,
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--die-with-parent',
    '--new-session',
  );
  return args;
}

function isInside(file: string, dir: string): boolean {
  const relative = path.relative(dir, file);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

/** A job uid must be able to walk down to its directory: every directory above it searchable by others. */
function checkReachable(workdir: string): void {
  for (let dir = path.dirname(workdir); ; dir = path.dirname(dir)) {
    let mode: number;
    try {
      mode = statSync(dir).mode;
    } catch {
      break; // created later by mkdir -p: with the default mode, which is searchable
    }
    if ((mode & 0o001) === 0) {
      throw isolationUnavailable(
        `jobs run under uids of their own, but ${dir} (above --workdir ${workdir}) is not searchable by other users (mode ${(mode & 0o777).toString(8)}): chmod o+x it or choose another --workdir`,
      );
    }
    if (dir === path.dirname(dir)) break;
  }
}

export function findOnPath(name: string, searchPath: string): string | null {
  for (const dir of searchPath.split(':')) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      const stats = statSync(candidate);
      if (stats.isFile() && (stats.mode & 0o111) !== 0) return candidate;
    } catch {
      // Next.
    }
  }
  return null;
}
