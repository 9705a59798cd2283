/**
 * A waiting-job population shaped like LHCb's production snapshot of 2026-03-28 (871,973 waiting jobs, 501 TQs):
 * ~500 task queues holding ~870k jobs, 271 big TQs (1,001–5,000 jobs) holding ~93% of them, a long tail
 * and 37 single-job TQs; 60 sites; ~70 platforms (3 architecture levels × 23 OS tags); 11 job types with
 * MCSimulation dominant; one production owner with ~80% of the jobs, the rest spread over other owners.
 * Deterministic for a given seed.
 */
import type { JobDescriptionInput } from '../../shared/job/description.ts';
import type { JobOwnership } from '../../shared/job/model.ts';

export const SITES = Array.from({ length: 60 }, (_, i) => `LCG.Site${String(i + 1).padStart(2, '0')}.org`);
export const OS_TAGS = Array.from({ length: 23 }, (_, i) => `os:dist${String(i + 1).padStart(2, '0')}`);
export const PLATFORMS = ['x86_64', 'x86_64-v2', 'x86_64-v3'] as const;
const JOB_TYPES: [string, number][] = [
  ['MCSimulation', 520],
  ['MCFastSimulation', 188],
  ['WGProduction', 141],
  ['Reconstruction', 10],
  ['Stripping', 4],
  ['Merge', 3],
  ['Turbo', 2],
  ['Sprucing', 2],
  ['User', 1],
  ['MCReconstruction', 1],
  ['Test', 1],
];

export interface PopulationTaskQueue {
  ownership: JobOwnership;
  job: Partial<JobDescriptionInput>;
  jobs: number;
}

/** Mulberry32: a tiny seeded generator, so every run builds the same population. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function weighted<T>(random: () => number, items: [T, number][]): T {
  const total = items.reduce((sum, [, w]) => sum + w, 0);
  let x = random() * total;
  for (const [item, w] of items) {
    x -= w;
    if (x <= 0) return item;
  }
  return items[items.length - 1]![0];
}

export function buildPopulation(totalJobs: number, seed = 42): PopulationTaskQueue[] {
  const random = seededRandom(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  // TQ sizes: 271 big, 192 in the tail, 37 singletons; scaled to the requested total.
  const big = Array.from({ length: 271 }, () => 1001 + Math.floor(random() * 4000));
  const tail = Array.from({ length: 192 }, () => Math.max(2, Math.round(Math.exp(random() * Math.log(1000)))));
  const scale = (totalJobs - 37) / [...big, ...tail].reduce((a, b) => a + b, 0);
  const sizes = [...big, ...tail].map((n) => Math.max(1, Math.round(n * scale))).concat(Array(37).fill(1));
  const users = Array.from({ length: 40 }, (_, i) => `user${String(i + 1).padStart(2, '0')}`);
  let productionJobs = 0;
  return sizes.map((jobs, index) => {
    // Big TQs go to the production owner until it holds ~80% of all jobs; the rest to other owners.
    const production = index < 271 && productionJobs + jobs <= 0.8 * totalJobs;
    if (production) productionJobs += jobs;
    const ownership: JobOwnership = production
      ? { vo: 'lhcb', group: random() < 0.81 ? 'lhcb_mc' : 'lhcb_data', owner: 'lbprods' }
      : random() < 0.5
        ? { vo: 'lhcb', group: 'lhcb_calib', owner: pick(['calib1', 'calib2', 'calib3']) }
        : { vo: 'lhcb', group: 'lhcb_user', owner: pick(users) };
    const siteRoll = random();
    const sites =
      siteRoll < 0.7
        ? []
        : siteRoll < 0.9
          ? Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(SITES))
          : [];
    const bannedSites = siteRoll >= 0.9 ? [pick(SITES)] : [];
    const coreRoll = random();
    const cores = coreRoll < 0.85 ? { min: 1, max: 1 } : coreRoll < 0.95 ? { min: 1, max: 8 } : { min: 8, max: 8 };
    const job: Partial<JobDescriptionInput> = {
      jobType: production ? weighted(random, JOB_TYPES) : random() < 0.9 ? 'User' : 'Test',
      priority: production ? 1 : Math.floor(random() * 4),
      requirements: {
        cores,
        memoryPerCoreMB: random() < 0.3 ? 2000 : undefined,
        wallTimeSec: pick([3600, 21_600, 43_200, 86_400, 172_800]),
        platform: pick(PLATFORMS),
        sites: [...new Set(sites)],
        bannedSites: bannedSites.filter((site) => !sites.includes(site)),
        tags: [pick(OS_TAGS), ...(random() < 0.5 ? ['cvmfs:lhcb'] : [])],
      },
    };
    return { ownership, job, jobs };
  });
}

/** Tags beyond the OS ones (software, data, features): the many-TQ population draws from them. */
export const EXTRA_TAGS = Array.from({ length: 60 }, (_, i) => `feature:${String(i + 1).padStart(2, '0')}`);
const GPU_MODELS = ['a100', 'h100', 'v100', 't4', 'mi210', 'l40s'];

/**
 * `taskQueues` distinct task queues of `jobsPerTaskQueue` jobs each, for the scale of a large
 * multi-community instance: 40% ask for GPUs (1–8, a model among six, some a minimum GPU memory),
 * every TQ has an OS tag and 0–3 feature tags, 40% are pinned to 1–3 of the 60 sites, cores, memory,
 * wall time and platform vary, 200 owners in 4 groups. Deterministic for a given seed; built so that
 * no two TQs share a requirement set (each has a distinct `feature` or owner combination).
 */
export function buildManyTaskQueues(taskQueues: number, jobsPerTaskQueue: number, seed = 7): PopulationTaskQueue[] {
  const random = seededRandom(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const owners = Array.from({ length: 200 }, (_, i) => `owner${String(i + 1).padStart(3, '0')}`);
  const groups = ['lhcb_user', 'lhcb_mc', 'lhcb_calib', 'lhcb_data'];
  return Array.from({ length: taskQueues }, (_, index) => {
    const gpu = random() < 0.4;
    const pinned = random() < 0.4;
    const featureCount = Math.floor(random() * 4);
    const tags = [pick(OS_TAGS), ...Array.from({ length: featureCount }, () => pick(EXTRA_TAGS))];
    const ownership: JobOwnership = { vo: 'lhcb', group: pick(groups), owner: owners[index % owners.length] as string };
    const coreRoll = random();
    const job: Partial<JobDescriptionInput> = {
      jobType: pick(JOB_TYPES)[0],
      // The index as a priority bucket and a wall time keep the requirement sets apart.
      priority: index % 5,
      requirements: {
        cores: coreRoll < 0.7 ? { min: 1, max: 1 } : coreRoll < 0.9 ? { min: 1, max: 8 } : { min: 4, max: 4 },
        memoryPerCoreMB: random() < 0.3 ? 1000 + 500 * Math.floor(random() * 4) : undefined,
        wallTimeSec: 600 + (index % 5000) * 30,
        platform: pick(PLATFORMS),
        sites: pinned ? [...new Set(Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(SITES)))] : [],
        tags: [...new Set(tags)],
        ...(gpu && {
          gpus: {
            min: 1 + Math.floor(random() * 2),
            max: 2 + Math.floor(random() * 7),
            models: [pick(GPU_MODELS)],
            ...(random() < 0.3 && { minMemoryMB: 16_000 }),
          },
        }),
      },
    };
    return { ownership, job, jobs: jobsPerTaskQueue };
  });
}
