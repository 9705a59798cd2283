/**
 * The node's measured CPU power, kept for the next pilots on the same node. A node runs many pilots
 * one after another (each batch job is a pilot), and the DB12-style benchmark costs ~0.1 s of every
 * start; the power of a core does not change between two pilots. The first pilot measures and writes
 * the figure; the next ones read it while it is younger than the configured age and was measured on
 * the same hardware and kernel (the node key). With `maxAgeMs` 0 every pilot measures.
 *
 * The file sits in a shared temporary directory, so it is read only if it is a plain file (not a
 * link) owned by this user and writable by nobody else, and its content is checked like any input.
 * It is written whole (a private temporary file renamed over it), so a reader never sees half of it.
 */
import { lstat, open, readFile, rename, unlink } from 'node:fs/promises';

export interface CpuPowerCacheOptions {
  file: string;
  /** How old a kept figure may be; 0 = never read or write the file. */
  maxAgeMs: number;
  /** What the figure belongs to: CPU model, cores, kernel, platform. */
  nodeKey: string;
  nowMs(): number;
}

export interface CpuPower {
  power: number;
  /** Read from the cache file rather than measured now. */
  cached: boolean;
}

const FORMAT_VERSION = 1;
const MAX_FILE_BYTES = 4096;
/** Powers outside this range are not a core's (DB12 gives single digits to tens). */
const MAX_PLAUSIBLE_POWER = 10_000;

interface CacheRecord {
  v: number;
  nodeKey: string;
  power: number;
  measuredAtMs: number;
}

async function readKept(options: CpuPowerCacheOptions): Promise<number | null> {
  try {
    const stats = await lstat(options.file);
    const ownUid = process.getuid?.() ?? stats.uid;
    if (!stats.isFile() || stats.uid !== ownUid || (stats.mode & 0o022) !== 0 || stats.size > MAX_FILE_BYTES) {
      return null;
    }
    const record = JSON.parse(await readFile(options.file, 'utf8')) as Partial<CacheRecord> | null;
    const nowMs = options.nowMs();
    if (
      record?.v !== FORMAT_VERSION ||
      record.nodeKey !== options.nodeKey ||
      typeof record.power !== 'number' ||
      !(record.power > 0 && record.power < MAX_PLAUSIBLE_POWER) ||
      typeof record.measuredAtMs !== 'number' ||
      record.measuredAtMs > nowMs ||
      nowMs - record.measuredAtMs >= options.maxAgeMs
    ) {
      return null;
    }
    return record.power;
  } catch {
    return null; // absent, unreadable or not JSON: measure
  }
}

async function keep(options: CpuPowerCacheOptions, power: number): Promise<void> {
  const temporary = `${options.file}.${process.pid}.tmp`;
  const record: CacheRecord = { v: FORMAT_VERSION, nodeKey: options.nodeKey, power, measuredAtMs: options.nowMs() };
  try {
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(JSON.stringify(record));
    } finally {
      await handle.close();
    }
    await rename(temporary, options.file);
  } catch {
    await unlink(temporary).catch(() => undefined); // not kept: the next pilot measures again
  }
}

/** The kept figure when there is a good one, else `measure()`'s, kept for the next pilot. */
export async function cpuPowerOfNode(options: CpuPowerCacheOptions, measure: () => number): Promise<CpuPower> {
  if (options.maxAgeMs > 0) {
    const kept = await readKept(options);
    if (kept !== null) return { power: kept, cached: true };
  }
  const power = measure();
  if (options.maxAgeMs > 0 && power > 0 && power < MAX_PLAUSIBLE_POWER) await keep(options, power);
  return { power, cached: false };
}
