/**
 * The matcher's in-memory view of the task queues that have waiting jobs, so an offer is ranked
 * without touching the store (negative answers cost a scan of a few hundred TQs in memory). The store
 * stays the truth: a claim returns the TQ's new figures, submissions re-read their TQs, and a periodic
 * refresh picks up what other matchers sharing the store did.
 */
import type { JobStore, TaskQueueStats, TaskQueueView } from '../store/job-store.ts';
import type { TaskQueueRequirements } from './task-queue-key.ts';

export interface IndexedTaskQueue {
  id: number;
  vo: string;
  group: string;
  owner: string;
  requirements: TaskQueueRequirements;
  waitingJobs: number;
  topPriority: number;
  nextJobId: number | null;
  /** An administrator's override: the highest boost among fitting TQs is served first. */
  boost: number;
  /** A paused TQ keeps its figures but is left out of `withWaitingJobs` (matching and demand skip it). */
  paused: boolean;
}

export class TaskQueueIndex {
  readonly #byId = new Map<number, IndexedTaskQueue>();
  /** Per VO, the TQs that have waiting jobs; rebuilt lazily after a change. */
  readonly #byVo = new Map<string, IndexedTaskQueue[]>();
  #dirty = true;

  async load(store: JobStore): Promise<void> {
    const views = await store.listTaskQueues({});
    const seen = new Set<number>();
    for (const view of views) {
      this.upsert(view);
      seen.add(view.id);
    }
    for (const [id, tq] of this.#byId) if (!seen.has(id)) tq.waitingJobs = 0;
    this.#dirty = true;
  }

  upsert(view: TaskQueueView): void {
    const known = this.#byId.get(view.id);
    if (known) {
      known.boost = view.boost;
      this.applyStats({ ...view, paused: view.paused !== null });
      return;
    }
    this.#byId.set(view.id, {
      id: view.id,
      vo: view.vo,
      group: view.group,
      owner: view.owner,
      requirements: view.requirements,
      waitingJobs: view.waitingJobs,
      topPriority: view.topPriority,
      nextJobId: view.nextJobId,
      boost: view.boost,
      paused: view.paused !== null,
    });
    this.#dirty = true;
  }

  applyStats(stats: TaskQueueStats): void {
    const tq = this.#byId.get(stats.id);
    if (!tq) return;
    const wasListed = tq.waitingJobs > 0 && !tq.paused;
    tq.waitingJobs = stats.waitingJobs;
    tq.topPriority = stats.topPriority;
    tq.nextJobId = stats.nextJobId;
    if (stats.paused !== undefined) tq.paused = stats.paused;
    if (wasListed !== (tq.waitingJobs > 0 && !tq.paused)) this.#dirty = true;
  }

  get(id: number): IndexedTaskQueue | undefined {
    return this.#byId.get(id);
  }

  /**
   * TQs of a VO with waiting jobs that are not paused. The array stays the same object until a TQ joins or leaves the list
   * (callers may cache what they derive from it).
   */
  withWaitingJobs(vo: string): readonly IndexedTaskQueue[] {
    if (this.#dirty) {
      this.#byVo.clear();
      for (const tq of this.#byId.values()) {
        if (tq.waitingJobs <= 0 || tq.paused) continue;
        const list = this.#byVo.get(tq.vo);
        if (list) list.push(tq);
        else this.#byVo.set(tq.vo, [tq]);
      }
      this.#dirty = false;
    }
    return this.#byVo.get(vo) ?? [];
  }
}
