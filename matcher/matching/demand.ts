/**
 * Demand for pilots: how many waiting jobs a pilot of a given queue could run, and how many such
 * pilots they would keep busy at once. The queue's slot (cores, memory, GPUs, wall time, platform,
 * tags, required tags) is turned into an offer and checked against the VO's task queues with the very
 * rules of matching (`fits`, the site mask), so a director never sends pilots for jobs that no pilot
 * of the queue could take. Nothing here reads jobs: the task-queue index has the counts.
 *
 * One difference with a pilot's offer: a queue whose CPU power is not known (null) does not hold a
 * job's CPU work against its wall time — the pilot measures its power when it starts.
 */
import type { GpuInfo } from '../../shared/protocol/messages.ts';
import type { DemandQueue, QueueSlot } from '../../shared/protocol/site-director.ts';
import { fits, grant, memoryNeededMB, viewOffer, type Offer, type OfferView } from './fit.ts';
import type { IndexedTaskQueue } from './task-queue-index.ts';
import type { TaskQueueRequirements } from './task-queue-key.ts';

export interface QueueDemand {
  waitingJobs: number;
  pilotsNeeded: number;
  taskQueues: number;
  topTaskQueues: { id: number; waitingJobs: number; jobsPerPilot: number }[];
}

const TOP_LISTED = 5;

export function slotOffer(queue: Pick<DemandQueue, 'vo' | 'site' | 'ce' | 'queue'>, slot: QueueSlot): Offer {
  const gpus: GpuInfo[] = Array.from({ length: slot.gpus }, (_, index) => ({
    id: `gpu${index}`,
    model: slot.gpuModel ?? '',
    memoryMB: slot.gpuMemoryMB ?? 0,
  }));
  return {
    vo: queue.vo,
    site: queue.site,
    ce: queue.ce,
    queue: queue.queue,
    resources: {
      cores: slot.cores,
      memoryMB: slot.memoryMB,
      wallTimeSec: slot.wallTimeSec,
      tags: slot.tags,
      requiredTags: slot.requiredTags,
      gpus,
      diskMB: slot.diskMB,
      cpuPower: slot.cpuPower,
      platform: slot.platform,
      wholeNode: slot.wholeNode,
    },
  };
}

/** Jobs of this TQ that run side by side in one pilot of the queue (at least 1 when it fits at all). */
export function jobsPerPilot(req: TaskQueueRequirements, view: OfferView): number {
  if (req.wholeNode) return 1;
  const given = grant(req, view);
  let jobs = Math.floor(view.cores / Math.max(1, given.cores));
  const memory = memoryNeededMB(req, given.cores);
  if (memory > 0) jobs = Math.min(jobs, Math.floor(view.memoryMB / memory));
  if (req.gpusMin > 0) jobs = Math.min(jobs, Math.floor(view.gpus.length / Math.max(1, given.gpuIds.length)));
  return Math.max(1, jobs);
}

/**
 * @param taskQueues the VO's task queues with waiting jobs
 * @param passesMask whether a TQ may go to the queue's site (site mask)
 */
export function queueDemand(
  taskQueues: readonly IndexedTaskQueue[],
  offer: Offer,
  passesMask: (tq: IndexedTaskQueue) => boolean,
): QueueDemand {
  const view = viewOffer(offer);
  // Unknown power: the CPU-work rule is left to the pilot (see the module comment).
  if (view.cpuPower === null) view.cpuPower = Number.POSITIVE_INFINITY;
  let waitingJobs = 0;
  let pilotFraction = 0;
  const fitting: QueueDemand['topTaskQueues'] = [];
  for (const tq of taskQueues) {
    if (tq.waitingJobs <= 0 || tq.vo !== offer.vo || !passesMask(tq) || !fits(tq.requirements, view)) continue;
    const perPilot = jobsPerPilot(tq.requirements, view);
    waitingJobs += tq.waitingJobs;
    pilotFraction += tq.waitingJobs / perPilot;
    fitting.push({ id: tq.id, waitingJobs: tq.waitingJobs, jobsPerPilot: perPilot });
  }
  fitting.sort((a, b) => b.waitingJobs - a.waitingJobs || a.id - b.id);
  return {
    waitingJobs,
    // A rounding error must not ask for a pilot too many: 2.0000000001 is 2.
    pilotsNeeded: Math.ceil(pilotFraction - 1e-9),
    taskQueues: fitting.length,
    topTaskQueues: fitting.slice(0, TOP_LISTED),
  };
}
