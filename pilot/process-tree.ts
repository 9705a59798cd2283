/**
 * A payload's process tree, read from /proc (Linux). Payloads run in their own process group, but a
 * payload may start children in new groups or sessions, so killing walks the parent links too.
 * Numbers are best effort: on a system without /proc the tree is just the root process.
 */
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';

/** Linux reports CPU times in clock ticks (USER_HZ, 100 on every mainstream kernel) and RSS in pages. */
const CLOCK_TICKS_PER_SEC = 100;

/**
 * The kernel's page size: 4 KiB on x86-64, but 64 KiB on some aarch64/ppc64le distributions. Node
 * has no sysconf, so it is read off this process: its RSS in bytes over its RSS in pages.
 */
export function pageBytes(): number {
  cachedPageBytes ??= measurePageBytes();
  return cachedPageBytes;
}
let cachedPageBytes: number | undefined;

function measurePageBytes(): number {
  try {
    const pages = Number(readFileSync('/proc/self/statm', 'utf8').split(' ')[1]);
    const ratio = process.memoryUsage.rss() / pages;
    // The two reads are not simultaneous: snap to the nearest plausible power of two.
    for (const size of [4096, 16_384, 65_536]) if (ratio < size * 1.5) return size;
    return 65_536;
  } catch {
    return 4096;
  }
}

export interface ProcessSample {
  pid: number;
  ppid: number;
  pgid: number;
  cpuSec: number;
  rssBytes: number;
}

export interface TreeUsage {
  cpuSec: number;
  rssMB: number;
  processes: number;
}

/** Parses /proc/<pid>/stat; the command name sits in parentheses and may itself hold spaces or ')'. */
export function parseProcStat(text: string): ProcessSample | null {
  const close = text.lastIndexOf(')');
  const open = text.indexOf('(');
  if (open < 0 || close < open) return null;
  const pid = Number(text.slice(0, open).trim());
  // Fields after the name, numbered from 3 (state) as in proc(5).
  const fields = text.slice(close + 2).split(' ');
  const field = (n: number): number => Number(fields[n - 3]);
  const sample = {
    pid,
    ppid: field(4),
    pgid: field(5),
    // utime + stime, plus cutime + cstime: the CPU of children it already reaped (a shell loop's
    // short-lived commands), which otherwise would vanish from the tree's total.
    cpuSec: (field(14) + field(15) + field(16) + field(17)) / CLOCK_TICKS_PER_SEC,
    rssBytes: field(24) * pageBytes(),
  };
  return Object.values(sample).every(Number.isFinite) ? sample : null;
}

/** Every process of the node (one /proc read serves all the jobs of a watchdog tick). */
export async function readAllProcesses(): Promise<ProcessSample[]> {
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return [];
  }
  const samples = await Promise.all(
    names
      .filter((name) => /^\d+$/.test(name))
      .map(async (name) => {
        try {
          return parseProcStat(await readFile(`/proc/${name}/stat`, 'utf8'));
        } catch {
          return null; // the process ended while we looked
        }
      }),
  );
  return samples.filter((sample): sample is ProcessSample => sample !== null);
}

/** The root, its process group and every descendant (by parent links) that is still alive. */
export async function processTree(rootPid: number): Promise<ProcessSample[]> {
  return treeOf(await readAllProcesses(), rootPid);
}

/** The tree of `rootPid` within a snapshot of all processes. */
export function treeOf(all: readonly ProcessSample[], rootPid: number): ProcessSample[] {
  const members = new Map<number, ProcessSample>();
  for (const sample of all) {
    if (sample.pid === rootPid || sample.pgid === rootPid) members.set(sample.pid, sample);
  }
  let grew = true;
  while (grew) {
    grew = false;
    for (const sample of all) {
      if (!members.has(sample.pid) && members.has(sample.ppid)) {
        members.set(sample.pid, sample);
        grew = true;
      }
    }
  }
  return [...members.values()];
}

export async function treeUsage(rootPid: number): Promise<TreeUsage> {
  return usageOf(await processTree(rootPid));
}

export function usageOf(tree: readonly ProcessSample[]): TreeUsage {
  let cpuSec = 0;
  let rssBytes = 0;
  for (const sample of tree) {
    cpuSec += sample.cpuSec;
    rssBytes += sample.rssBytes;
  }
  return { cpuSec, rssMB: Math.round((rssBytes / (1024 * 1024)) * 10) / 10, processes: tree.length };
}

/**
 * Sends `signal` to the root's process group and to every process of its tree. Returns the pids
 * that were signalled (the ones that still existed).
 */
export async function signalTree(rootPid: number, signal: NodeJS.Signals): Promise<number[]> {
  const pids = new Set((await processTree(rootPid)).map((sample) => sample.pid));
  trySignal(-rootPid, signal); // the payload's own group (it was started detached)
  const signalled: number[] = [];
  for (const pid of pids) {
    if (pid === process.pid) continue;
    if (trySignal(pid, signal)) signalled.push(pid);
  }
  return signalled;
}

/** Whether `pid` still runs: a zombie (dead, waiting to be reaped) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function trySignal(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * SIGTERM to the whole tree, then SIGKILL to whatever is still alive after `graceMs` (or at once
 * when `graceMs` is 0). The tree is snapshotted first, so children that outlive the root are found.
 * Resolves once every process of the snapshot is gone (or `settleMs` after the SIGKILL).
 */
export async function terminateTree(rootPid: number, graceMs: number, pollMs = 50, settleMs = 2_000): Promise<void> {
  const snapshot = (await processTree(rootPid)).map((sample) => sample.pid).filter((pid) => pid !== process.pid);
  const waitGone = async (ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && snapshot.some(isAlive)) {
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  };
  if (graceMs > 0) {
    await signalTree(rootPid, 'SIGTERM');
    for (const pid of snapshot) trySignal(pid, 'SIGTERM');
    await waitGone(graceMs);
  }
  await signalTree(rootPid, 'SIGKILL');
  for (const pid of snapshot) if (isAlive(pid)) trySignal(pid, 'SIGKILL');
  await waitGone(settleMs);
}
