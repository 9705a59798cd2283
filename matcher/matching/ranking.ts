/**
 * How one TQ is chosen among the candidates of an offer (all of them fit it and have waiting jobs):
 * the highest administrator boost; the highest job-type rank; group fair share, the group with the
 * oldest waiting job first on a tie; owner fair share inside the group (unless it shares its jobs);
 * then user priority, how well a job fills the offer, and FIFO; what is still equal goes to the TQ
 * met first. `chooseLinear` reads every candidate; candidate-buckets.ts gives the same answer from
 * aggregates kept per offer shape.
 */
import type { FairShare } from './fair-share.ts';
import { fitScore, type OfferView } from './fit.ts';
import type { IndexedTaskQueue } from './task-queue-index.ts';

export interface RankingRules {
  jobTypeRank(jobType: string): number;
  jobSharing(group: string): boolean;
  /** The fair share among the VO's groups (picking from it moves it on). */
  groupShares(vo: string): FairShare;
  /** The fair share among a group's owners. */
  ownerShares(vo: string, group: string): FairShare;
}

export function chooseLinear(
  candidates: readonly IndexedTaskQueue[],
  view: OfferView,
  rules: RankingRules,
): IndexedTaskQueue {
  let topBoost = -Infinity;
  for (const tq of candidates) topBoost = Math.max(topBoost, tq.boost);
  let pool = candidates.filter((tq) => tq.boost === topBoost);
  let topRank = -Infinity;
  for (const tq of pool) topRank = Math.max(topRank, rules.jobTypeRank(tq.requirements.jobType));
  pool = pool.filter((tq) => rules.jobTypeRank(tq.requirements.jobType) === topRank);
  const vo = view.vo;
  const group = rules.groupShares(vo).pick(keysOldestFirst(pool, (tq) => tq.group)) as string;
  pool = pool.filter((tq) => tq.group === group);
  if (!rules.jobSharing(group)) {
    const owner = rules.ownerShares(vo, group).pick(keysOldestFirst(pool, (tq) => tq.owner)) as string;
    pool = pool.filter((tq) => tq.owner === owner);
  }
  let best = pool[0] as IndexedTaskQueue;
  let bestScore = fitScore(best.requirements, view);
  for (let i = 1; i < pool.length; i += 1) {
    const tq = pool[i] as IndexedTaskQueue;
    if (tq.topPriority < best.topPriority) continue;
    const score = fitScore(tq.requirements, view);
    if (isBetter(tq, score, best, bestScore)) {
      best = tq;
      bestScore = score;
    }
  }
  return best;
}

/** Inside the chosen owner's TQs: higher user priority, then a fuller use of the offer, then the older job. */
export function isBetter(tq: IndexedTaskQueue, score: number, than: IndexedTaskQueue, thanScore: number): boolean {
  const better =
    tq.topPriority - than.topPriority || score - thanScore || (than.nextJobId ?? Infinity) - (tq.nextJobId ?? Infinity);
  return better > 0;
}

/** The distinct keys of the TQs, ordered by their oldest waiting job (FIFO tie-break for fair share). */
export function keysOldestFirst(tqs: readonly IndexedTaskQueue[], keyOf: (tq: IndexedTaskQueue) => string): string[] {
  const first = tqs[0];
  if (first === undefined) return [];
  const firstKey = keyOf(first);
  if (tqs.every((tq) => keyOf(tq) === firstKey)) return [firstKey]; // the common case: nothing to order
  const oldest = new Map<string, number>();
  for (const tq of tqs) {
    const key = keyOf(tq);
    const id = tq.nextJobId ?? Infinity;
    const known = oldest.get(key);
    if (known === undefined || id < known) oldest.set(key, id);
  }
  return [...oldest.keys()].sort((a, b) => (oldest.get(a) as number) - (oldest.get(b) as number));
}
