/**
 * The watchdog's judgements, as pure functions over samples, in the manner of DIRAC's Watchdog but
 * without its pitfalls (the load check does not skip the others, the memory limit is enforced, the
 * stall check looks at CPU progress over a window, not at a 30-minute heartbeat):
 *  - memory: the RSS of the job's whole process tree above the memory it was granted;
 *  - stalled: the tree used less than `stallMinCpuRatio` of one core over the last `stallTimeoutMs`;
 *  - disk full: the working area has less than `minFreeDiskMB` left; the job that wrote the most goes.
 * The wall-clock limit is a plain timer in the job runner. Sampling (/proc, the disk) is done there.
 */
import { opendir, lstat } from 'node:fs/promises';
import path from 'node:path';

export const MEMORY_LIMIT_POLICIES = ['kill', 'warn', 'off'] as const;
export type MemoryLimitPolicy = (typeof MEMORY_LIMIT_POLICIES)[number];

export interface WatchdogLimits {
  /** The job's memory grant, MB; 0 or null = the job stated no memory need (not limited). */
  memoryMB: number | null;
  memoryPolicy: MemoryLimitPolicy;
  /** 0 = no stall check. */
  stallTimeoutMs: number;
  /** Fraction of one core below which the job counts as making no progress (0.01 = 1 %). */
  stallMinCpuRatio: number;
}

export interface UsageSample {
  atMs: number;
  cpuSec: number;
  rssMB: number;
}

export type WatchdogVerdict =
  | { kind: 'ok' }
  | { kind: 'memory-warning'; rssMB: number; limitMB: number }
  | { kind: 'memory'; rssMB: number; limitMB: number }
  | { kind: 'stalled'; cpuSec: number; windowSec: number };

/** The watchdog's memory of one job: CPU samples over the stall window, warnings already given. */
export class JobWatch {
  readonly #limits: WatchdogLimits;
  #samples: UsageSample[] = [];
  #warnedMemory = false;
  peakRssMB = 0;

  constructor(limits: WatchdogLimits) {
    this.#limits = limits;
  }

  /** Judges one sample; a verdict other than ok/memory-warning means the job must be stopped. */
  assess(sample: UsageSample): WatchdogVerdict {
    const limits = this.#limits;
    this.peakRssMB = Math.max(this.peakRssMB, sample.rssMB);
    const limitMB = limits.memoryMB ?? 0;
    if (limits.memoryPolicy !== 'off' && limitMB > 0 && sample.rssMB > limitMB) {
      if (limits.memoryPolicy === 'kill') return { kind: 'memory', rssMB: sample.rssMB, limitMB };
      if (!this.#warnedMemory) {
        this.#warnedMemory = true;
        return { kind: 'memory-warning', rssMB: sample.rssMB, limitMB };
      }
    }
    if (limits.stallTimeoutMs > 0) {
      this.#samples.push(sample);
      const windowStart = sample.atMs - limits.stallTimeoutMs;
      // Keep the newest sample at or before the window start (the baseline) and everything after it.
      let baseline = -1;
      for (let i = 0; i < this.#samples.length; i += 1)
        if ((this.#samples[i] as UsageSample).atMs <= windowStart) baseline = i;
      if (baseline > 0) this.#samples = this.#samples.slice(baseline);
      const first = this.#samples[0] as UsageSample;
      if (baseline >= 0) {
        const windowSec = (sample.atMs - first.atMs) / 1000;
        const progress = sample.cpuSec - first.cpuSec;
        if (progress < windowSec * limits.stallMinCpuRatio) return { kind: 'stalled', cpuSec: progress, windowSec };
      }
    }
    return { kind: 'ok' };
  }
}

/** When the working area runs out of disk: which job to stop (the one that wrote the most), or null. */
export function diskFullVictim(
  freeMB: number | null,
  minFreeMB: number,
  usedByJobMB: ReadonlyMap<string, number>,
): string | null {
  if (freeMB === null || freeMB >= minFreeMB || usedByJobMB.size === 0) return null;
  let victim: string | null = null;
  let most = -1;
  for (const [key, used] of usedByJobMB) {
    if (used > most) {
      most = used;
      victim = key;
    }
  }
  return victim;
}

/**
 * Disk used under `dir`, MB (allocated blocks, so sparse files count for what they occupy; hard
 * links are counted once). Symlinks are not followed. Stops counting after `maxEntries` entries.
 */
export async function directoryUsageMB(dir: string, maxEntries = 200_000): Promise<number> {
  let bytes = 0;
  let entries = 0;
  const seen = new Set<string>();
  const pending = [dir];
  while (pending.length > 0 && entries < maxEntries) {
    const current = pending.pop() as string;
    let handle;
    try {
      handle = await opendir(current);
    } catch {
      continue;
    }
    for await (const entry of handle) {
      entries += 1;
      if (entries > maxEntries) break;
      const full = path.join(current, entry.name);
      try {
        const stats = await lstat(full);
        if (stats.nlink > 1) {
          const id = `${stats.dev}:${stats.ino}`;
          if (seen.has(id)) continue;
          seen.add(id);
        }
        bytes += stats.blocks * 512;
        if (stats.isDirectory()) pending.push(full);
      } catch {
        // removed while we looked
      }
    }
  }
  return Math.round((bytes / (1024 * 1024)) * 10) / 10;
}
