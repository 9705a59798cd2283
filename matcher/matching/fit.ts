/**
 * Does a task queue's requirements fit an offer, and what does a job of it get? `fits` is the hot path
 * (no allocation); `checkRequirements` answers the same question rule by rule with a reason for each,
 * for `explain`. test/matcher/fit.test.ts checks on random inputs that the two always agree and that a
 * grant never exceeds the offer.
 */
import type { GpuInfo, OfferResources } from '../../shared/protocol/messages.ts';
import { parsePlatform, platformRuns, type Platform } from '../../shared/job/platform.ts';
import type { TaskQueueRequirements } from './task-queue-key.ts';

export interface Offer {
  vo: string;
  site: string;
  ce: string | null;
  queue: string | null;
  resources: OfferResources;
}

/** An offer with its optional fields resolved, computed once per offer. */
export interface OfferView {
  vo: string;
  site: string;
  ce: string | null;
  cores: number;
  memoryMB: number;
  wallTimeSec: number | null;
  tags: ReadonlySet<string>;
  requiredTags: readonly string[];
  gpus: readonly GpuInfo[];
  diskMB: number | null;
  cpuPower: number | null;
  platform: Platform | null;
  wholeNode: boolean;
}

export function viewOffer(offer: Offer): OfferView {
  const r = offer.resources;
  return {
    vo: offer.vo,
    site: offer.site,
    ce: offer.ce,
    cores: r.cores,
    memoryMB: r.memoryMB,
    wallTimeSec: r.wallTimeSec,
    tags: new Set(r.tags),
    requiredTags: r.requiredTags ?? [],
    gpus: r.gpus ?? [],
    diskMB: r.diskMB ?? null,
    cpuPower: r.cpuPower ?? null,
    platform: r.platform ? parsePlatform(r.platform) : null,
    wholeNode: r.wholeNode ?? false,
  };
}

export type RequirementName =
  | 'cores'
  | 'wholeNode'
  | 'memory'
  | 'gpus'
  | 'wallTime'
  | 'cpuWork'
  | 'platform'
  | 'disk'
  | 'sites'
  | 'bannedSites'
  | 'ces'
  | 'tags'
  | 'requiredTags';

export interface RequirementCheck {
  requirement: RequirementName;
  pass: boolean;
  reason: string;
}

export function memoryNeededMB(req: TaskQueueRequirements, cores: number): number {
  return (req.memoryMB ?? 0) + (req.memoryPerCoreMB ?? 0) * cores;
}

function gpuMatches(req: TaskQueueRequirements, gpu: GpuInfo): boolean {
  if (req.gpuMinMemoryMB !== null && gpu.memoryMB < req.gpuMinMemoryMB) return false;
  if (req.gpuModels.length === 0) return true;
  const model = gpu.model.toLowerCase();
  return req.gpuModels.some((fragment) => model.includes(fragment));
}

function fittingGpus(req: TaskQueueRequirements, offer: OfferView): GpuInfo[] {
  return offer.gpus.filter((gpu) => gpuMatches(req, gpu));
}

/** Seconds the job's CPU work takes on `cores` cores of this pilot; null when the pilot's power is unknown. */
function cpuWorkSeconds(req: TaskQueueRequirements, offer: OfferView, cores: number): number | null {
  if (req.cpuWork === null) return 0;
  if (offer.cpuPower === null) return null;
  return req.cpuWork / (offer.cpuPower * cores);
}

export function fits(req: TaskQueueRequirements, offer: OfferView): boolean {
  return fitsResources(req, offer) && fitsPlacement(req, offer);
}

/**
 * The checks that depend only on where the offer comes from and what it declares (site, CE, tags,
 * platform): the same for every offer of a pilot, so the matcher caches their outcome per offer shape
 * (see placementKey).
 */
export function fitsPlacement(req: TaskQueueRequirements, offer: OfferView): boolean {
  if (req.sites.length > 0 && !req.sites.includes(offer.site)) return false;
  if (req.bannedSites.length > 0 && req.bannedSites.includes(offer.site)) return false;
  if (req.ces.length > 0 && (offer.ce === null || !req.ces.includes(offer.ce))) return false;
  for (const tag of req.tags) if (!offer.tags.has(tag)) return false;
  for (const tag of offer.requiredTags) if (!req.tags.includes(tag)) return false;
  if (req.platform !== null) {
    const wanted = parsePlatform(req.platform);
    if (!wanted || !offer.platform || !platformRuns(offer.platform, wanted)) return false;
  }
  return true;
}

/** Everything fitsPlacement depends on, as one string. */
export function placementKey(offer: Offer): string {
  const r = offer.resources;
  const tags = r.tags.length > 1 ? [...r.tags].sort() : r.tags;
  return [
    offer.vo,
    offer.site,
    offer.ce ?? '',
    r.platform ?? '',
    tags.join('\u0001'),
    (r.requiredTags ?? []).join('\u0001'),
  ].join('\u0000');
}

/** The checks on what the offer has left (cores, memory, time, disk, GPUs): they change after every match. */
export function fitsResources(req: TaskQueueRequirements, offer: OfferView): boolean {
  // Cheap and most discriminating checks first.
  if (offer.cores < req.coresMin) return false;
  if (req.wholeNode && !offer.wholeNode) return false;
  if (memoryNeededMB(req, req.coresMin) > offer.memoryMB) return false;
  if (offer.wallTimeSec !== null && offer.wallTimeSec < req.wallTimeSec) return false;
  if (req.diskMB !== null && (offer.diskMB === null || offer.diskMB < req.diskMB)) return false;
  if (req.cpuWork !== null) {
    const seconds = cpuWorkSeconds(req, offer, req.coresMin);
    if (seconds === null || (offer.wallTimeSec !== null && seconds > offer.wallTimeSec)) return false;
  }
  if (req.gpusMin > 0 && fittingGpus(req, offer).length < req.gpusMin) return false;
  return true;
}

export interface Grant {
  cores: number;
  memoryMB: number;
  gpuIds: string[];
}

/**
 * What a job of this TQ gets from the offer: a whole-node job every core; otherwise as many cores as
 * it may use, fewer when memory per core would not fit; GPUs up to its maximum. Call only when `fits`.
 */
function grantedCores(req: TaskQueueRequirements, offer: OfferView): number {
  let cores = req.wholeNode ? offer.cores : Math.min(req.coresMax, offer.cores);
  while (cores > req.coresMin && memoryNeededMB(req, cores) > offer.memoryMB) cores -= 1;
  return cores;
}

export function grant(req: TaskQueueRequirements, offer: OfferView): Grant {
  const cores = grantedCores(req, offer);
  const gpus = req.gpusMin > 0 ? fittingGpus(req, offer).slice(0, req.gpusMax) : [];
  const memoryMB = req.wholeNode ? offer.memoryMB : memoryNeededMB(req, cores);
  return { cores, memoryMB, gpuIds: gpus.map((gpu) => gpu.id) };
}

/** What the offer's view has left once a job of `req` holds `given` (the next job of the same offer). */
export function viewAfterGrant(view: OfferView, req: TaskQueueRequirements, given: Grant): OfferView {
  return {
    ...view,
    cores: view.cores - given.cores,
    memoryMB: view.memoryMB - given.memoryMB,
    gpus: given.gpuIds.length === 0 ? view.gpus : view.gpus.filter((gpu) => !given.gpuIds.includes(gpu.id)),
    diskMB: view.diskMB === null ? null : view.diskMB - (req.diskMB ?? 0),
    wholeNode: false,
  };
}

/** The offer's resources once the matched jobs hold theirs (what the next round of a `maxJobs` offer fills). */
export function offerAfterGrants(offer: Offer, held: readonly { req: TaskQueueRequirements; grant: Grant }[]): Offer {
  const r = offer.resources;
  const heldGpuIds = new Set(held.flatMap(({ grant: given }) => given.gpuIds));
  let cores = r.cores;
  let memoryMB = r.memoryMB;
  let diskMB = r.diskMB ?? null;
  for (const { req, grant: given } of held) {
    cores -= given.cores;
    memoryMB -= given.memoryMB;
    if (diskMB !== null) diskMB -= req.diskMB ?? 0;
  }
  return {
    ...offer,
    resources: {
      ...r,
      cores: Math.max(0, cores),
      memoryMB: Math.max(0, memoryMB),
      ...(r.gpus !== undefined && { gpus: r.gpus.filter((gpu) => !heldGpuIds.has(gpu.id)) }),
      ...(diskMB !== null && { diskMB: Math.max(0, diskMB) }),
      wholeNode: false,
    },
  };
}

/**
 * How well a grant uses the offer, 0..1: a multi-core pilot should not waste cores on small jobs.
 * Called for every candidate TQ of the chosen owner, so it allocates nothing.
 */
export function fitScore(req: TaskQueueRequirements, offer: OfferView): number {
  const cores = grantedCores(req, offer);
  const memoryMB = req.wholeNode ? offer.memoryMB : memoryNeededMB(req, cores);
  const coreShare = offer.cores > 0 ? cores / offer.cores : 0;
  const memoryShare = offer.memoryMB > 0 ? Math.min(1, memoryMB / offer.memoryMB) : 0;
  let gpuShare = 1;
  if (offer.gpus.length > 0) {
    let fitting = 0;
    if (req.gpusMin > 0) for (const gpu of offer.gpus) if (gpuMatches(req, gpu)) fitting += 1;
    gpuShare = Math.min(fitting, req.gpusMax) / offer.gpus.length;
  }
  return (2 * coreShare + memoryShare + gpuShare) / 4;
}

export function checkRequirements(req: TaskQueueRequirements, offer: OfferView): RequirementCheck[] {
  const gpusFitting = fittingGpus(req, offer);
  const missingTags = req.tags.filter((tag) => !offer.tags.has(tag));
  const unmetRequired = offer.requiredTags.filter((tag) => !req.tags.includes(tag));
  const memoryNeeded = memoryNeededMB(req, req.coresMin);
  const workSeconds = cpuWorkSeconds(req, offer, req.coresMin);
  const wanted = req.platform === null ? null : parsePlatform(req.platform);
  const timeLeft = offer.wallTimeSec === null ? 'no time limit' : `${offer.wallTimeSec} s left`;
  return [
    {
      requirement: 'cores',
      pass: offer.cores >= req.coresMin,
      reason: `needs at least ${req.coresMin} core(s), offer has ${offer.cores}`,
    },
    {
      requirement: 'wholeNode',
      pass: !req.wholeNode || offer.wholeNode,
      reason: req.wholeNode
        ? `needs a whole node, offer ${offer.wholeNode ? 'is' : 'is not'} one`
        : 'no whole node needed',
    },
    {
      requirement: 'memory',
      pass: memoryNeeded <= offer.memoryMB,
      reason:
        memoryNeeded === 0
          ? 'no memory requirement'
          : `needs ${memoryNeeded} MB for ${req.coresMin} core(s), offer has ${offer.memoryMB} MB`,
    },
    {
      requirement: 'gpus',
      pass: req.gpusMin === 0 || gpusFitting.length >= req.gpusMin,
      reason:
        req.gpusMin === 0
          ? 'no GPU needed'
          : `needs ${req.gpusMin} GPU(s)${req.gpuModels.length ? ` of model ${req.gpuModels.join('|')}` : ''}${
              req.gpuMinMemoryMB !== null ? ` with ≥ ${req.gpuMinMemoryMB} MB` : ''
            }, offer has ${gpusFitting.length} such of ${offer.gpus.length} free`,
    },
    {
      requirement: 'wallTime',
      pass: offer.wallTimeSec === null || offer.wallTimeSec >= req.wallTimeSec,
      reason: `needs ${req.wallTimeSec} s, offer has ${timeLeft}`,
    },
    {
      requirement: 'cpuWork',
      pass:
        req.cpuWork === null ||
        (workSeconds !== null && (offer.wallTimeSec === null || workSeconds <= offer.wallTimeSec)),
      reason:
        req.cpuWork === null
          ? 'no CPU work requirement'
          : workSeconds === null
            ? `needs ${req.cpuWork} units of CPU work, the pilot did not report its CPU power`
            : `needs ${req.cpuWork} units = ${Math.ceil(workSeconds)} s at power ${offer.cpuPower} on ${req.coresMin} core(s), offer has ${timeLeft}`,
    },
    {
      requirement: 'platform',
      pass: wanted === null || (offer.platform !== null && platformRuns(offer.platform, wanted)),
      reason:
        req.platform === null
          ? 'any platform'
          : `needs ${req.platform} or a higher level of the same architecture, offer is ${
              offer.platform ? `${offer.platform.arch}-v${offer.platform.level}` : 'of unknown platform'
            }`,
    },
    {
      requirement: 'disk',
      pass: req.diskMB === null || (offer.diskMB !== null && offer.diskMB >= req.diskMB),
      reason:
        req.diskMB === null
          ? 'no disk requirement'
          : `needs ${req.diskMB} MB of disk, offer has ${offer.diskMB ?? 'unknown'} MB`,
    },
    {
      requirement: 'sites',
      pass: req.sites.length === 0 || req.sites.includes(offer.site),
      reason: req.sites.length === 0 ? 'any site' : `allowed at ${req.sites.join(', ')}; offer is at ${offer.site}`,
    },
    {
      requirement: 'bannedSites',
      pass: !req.bannedSites.includes(offer.site),
      reason:
        req.bannedSites.length === 0
          ? 'no banned sites'
          : `banned at ${req.bannedSites.join(', ')}; offer is at ${offer.site}`,
    },
    {
      requirement: 'ces',
      pass: req.ces.length === 0 || (offer.ce !== null && req.ces.includes(offer.ce)),
      reason: req.ces.length === 0 ? 'any CE' : `allowed on ${req.ces.join(', ')}; offer is on ${offer.ce ?? 'no CE'}`,
    },
    {
      requirement: 'tags',
      pass: missingTags.length === 0,
      reason:
        req.tags.length === 0
          ? 'no tags required'
          : missingTags.length === 0
            ? `offer has ${req.tags.join(', ')}`
            : `offer lacks ${missingTags.join(', ')}`,
    },
    {
      requirement: 'requiredTags',
      pass: unmetRequired.length === 0,
      reason:
        offer.requiredTags.length === 0
          ? 'the offer requires no tags'
          : unmetRequired.length === 0
            ? `job carries the required ${offer.requiredTags.join(', ')}`
            : `the offer only takes jobs tagged ${unmetRequired.join(', ')}`,
    },
  ];
}
