/**
 * Normalises a job's requirements into the definition of its task queue (TQ). Jobs whose VO, group,
 * owner (unless the group shares its jobs) and normalised requirements are equal wait in the same TQ,
 * and matching ranks TQs, never individual jobs. Lists become sorted sets; wall time is rounded up to a
 * segment (DIRAC's CPU-time segments) and CPU work to two significant digits, so near-equal jobs share
 * a TQ (LHCb runs ~870k waiting jobs in ~500 TQs).
 */
import type { JobDescription } from '../../shared/job/description.ts';
import type { JobOwnership } from '../../shared/job/model.ts';
import { formatPlatform, parsePlatform } from '../../shared/job/platform.ts';

/** DIRAC's taskQueueCPUTimeIntervals, in seconds (6 min … 12.5 days). */
export const WALL_TIME_SEGMENTS_SEC = [
  360, 1800, 3600, 21_600, 43_200, 86_400, 172_800, 259_200, 345_600, 518_400, 691_200, 864_000, 1_080_000,
] as const;

export interface TaskQueueRequirements {
  coresMin: number;
  coresMax: number;
  wholeNode: boolean;
  memoryMB: number | null;
  memoryPerCoreMB: number | null;
  gpusMin: number;
  gpusMax: number;
  /** Lower-case model fragments; any of them matches. Empty = any model. */
  gpuModels: string[];
  gpuMinMemoryMB: number | null;
  wallTimeSec: number;
  cpuWork: number | null;
  platform: string | null;
  diskMB: number | null;
  sites: string[];
  bannedSites: string[];
  ces: string[];
  tags: string[];
  jobType: string;
}

export interface TaskQueueDefinition extends JobOwnership {
  requirements: TaskQueueRequirements;
  /** Canonical identity: equal keys ⇔ same TQ. */
  key: string;
}

export function wallTimeSegment(wallTimeSec: number): number {
  return WALL_TIME_SEGMENTS_SEC.find((segment) => segment >= wallTimeSec) ?? WALL_TIME_SEGMENTS_SEC.at(-1)!;
}

/** Rounds up to two significant digits: 12,345 → 13,000. */
export function roundUpTwoDigits(value: number): number {
  if (value <= 0) return value;
  const scale = 10 ** (Math.floor(Math.log10(value)) - 1);
  return Math.ceil(value / scale - 1e-9) * scale;
}

const sortedSet = (values: readonly string[]): string[] => [...new Set(values)].sort();

export function taskQueueRequirements(description: JobDescription): TaskQueueRequirements {
  const req = description.requirements;
  const platform = req.platform === undefined ? null : parsePlatform(req.platform);
  return {
    coresMin: req.cores.min,
    coresMax: req.cores.max,
    wholeNode: req.wholeNode,
    memoryMB: req.memoryMB ?? null,
    memoryPerCoreMB: req.memoryPerCoreMB ?? null,
    gpusMin: req.gpus?.min ?? 0,
    gpusMax: req.gpus?.max ?? 0,
    gpuModels: sortedSet((req.gpus?.models ?? []).map((m) => m.toLowerCase())),
    gpuMinMemoryMB: req.gpus?.minMemoryMB ?? null,
    wallTimeSec: wallTimeSegment(req.wallTimeSec),
    cpuWork: req.cpuWork === undefined ? null : roundUpTwoDigits(req.cpuWork),
    platform: platform ? formatPlatform(platform) : null,
    diskMB: req.diskMB ?? null,
    sites: sortedSet(req.sites),
    bannedSites: sortedSet(req.bannedSites),
    ces: sortedSet(req.ces),
    tags: sortedSet(req.tags),
    jobType: description.jobType,
  };
}

/** `jobSharing`: the group shares its jobs, so its owners' jobs wait in common TQs (owner ''). */
export function taskQueueDefinition(
  ownership: JobOwnership,
  description: JobDescription,
  jobSharing = false,
): TaskQueueDefinition {
  const requirements = taskQueueRequirements(description);
  const owner = jobSharing ? '' : ownership.owner;
  // Field order is fixed by the object literal above, so JSON.stringify is canonical.
  const key = JSON.stringify([ownership.vo, ownership.group, owner, requirements]);
  return { vo: ownership.vo, group: ownership.group, owner, requirements, key };
}
