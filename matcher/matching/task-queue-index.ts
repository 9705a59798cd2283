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

/**
 * A VO's TQs as matching scans them: every TQ that had waiting jobs since the last compaction, in the
 * order they came (append-only, so what callers derived from its first N entries stays true). TQs
 * that emptied or were paused since stay in it until they are more than half of it; callers check
 * `waitingJobs` and `paused`. `epoch` changes when the list is rebuilt (then derived data is stale).
 */
export interface ScanList {
  readonly epoch: number;
  readonly tqs: readonly IndexedTaskQueue[];
}

interface VoList {
  epoch: number;
  tqs: IndexedTaskQueue[];
  members: Set<number>;
  /** Entries not listed any more (emptied or paused). */
  stale: number;
}

/** TQs read from the store per page when the index is (re)loaded. */
const LOAD_PAGE_SIZE = 1000;

/** Lists are compacted once this many of their entries (and half of them) are stale. */
const MIN_STALE_TO_COMPACT = 64;

export class TaskQueueIndex {
  readonly #byId = new Map<number, IndexedTaskQueue>();
  /** Per VO, the TQs that have waiting jobs; rebuilt lazily after a change. */
  readonly #byVo = new Map<string, IndexedTaskQueue[]>();
  #dirty = true;
  readonly #scanLists = new Map<string, VoList>();
  #touchedDuringLoad: Set<number> | null = null;
  #epochs = 0;
  #onChange: (tq: IndexedTaskQueue) => void = () => {};

  /** Told each time a known TQ's figures (waiting jobs, next job, priority, boost, pause) are set. */
  watch(onChange: (tq: IndexedTaskQueue) => void): void {
    this.#onChange = onChange;
  }

  /**
   * Reads every TQ with waiting jobs from the store, a page at a time with a turn of the event loop
   * between pages (a store read blocks it: 50,000 TQs at once held matching for most of a second),
   * and forgets the waiting jobs of those the store no longer lists.
   */
  async load(store: JobStore): Promise<void> {
    // Every TQ a page lists is upserted, and what changed while the pages were read (a submission, a
    // claim) is newer than the pages: both are kept; the rest has no waiting job any more.
    const touched = new Set<number>();
    this.#touchedDuringLoad = touched;
    try {
      for (let afterId = 0; ;) {
        const page = await store.listTaskQueuesAfter(afterId, LOAD_PAGE_SIZE);
        for (const view of page) this.upsert(view);
        if (page.length < LOAD_PAGE_SIZE) break;
        afterId = (page.at(-1) as TaskQueueView).id;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.#touchedDuringLoad = null;
    }
    for (const [id, tq] of this.#byId) {
      if (!touched.has(id) && tq.waitingJobs > 0)
        this.applyStats({ id, waitingJobs: 0, topPriority: 0, nextJobId: null });
    }
    this.#dirty = true;
  }

  upsert(view: TaskQueueView): void {
    this.#touchedDuringLoad?.add(view.id);
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
    const added = this.#byId.get(view.id) as IndexedTaskQueue;
    if (added.waitingJobs > 0 && !added.paused) this.#scanListChanged(added, true);
  }

  applyStats(stats: TaskQueueStats): void {
    this.#touchedDuringLoad?.add(stats.id);
    const tq = this.#byId.get(stats.id);
    if (!tq) return;
    const wasListed = tq.waitingJobs > 0 && !tq.paused;
    tq.waitingJobs = stats.waitingJobs;
    tq.topPriority = stats.topPriority;
    tq.nextJobId = stats.nextJobId;
    if (stats.paused !== undefined) tq.paused = stats.paused;
    this.#onChange(tq);
    const listed = tq.waitingJobs > 0 && !tq.paused;
    if (wasListed !== listed) {
      this.#dirty = true;
      this.#scanListChanged(tq, listed);
    }
  }

  /** Keeps the VO's scan list: a TQ that is listed again is appended (once); one that leaves counts as stale. */
  #scanListChanged(tq: IndexedTaskQueue, listed: boolean): void {
    const list = this.#scanLists.get(tq.vo);
    if (!list) return; // built on first use
    if (listed) {
      if (!list.members.has(tq.id)) {
        list.members.add(tq.id);
        list.tqs.push(tq);
      } else list.stale = Math.max(0, list.stale - 1);
    } else if (list.members.has(tq.id)) {
      list.stale += 1;
      if (list.stale >= MIN_STALE_TO_COMPACT && list.stale * 2 > list.tqs.length) this.#scanLists.delete(tq.vo);
    }
  }

  /**
   * The VO's scan list (see ScanList): kept up to date as TQs fill and empty, instead of being
   * rebuilt at each change; with tens of thousands of TQs, a rebuild per emptied TQ was most of a
   * match's cost.
   */
  scanList(vo: string): ScanList {
    let list = this.#scanLists.get(vo);
    if (!list) {
      const tqs = [...this.#byId.values()].filter((tq) => tq.vo === vo && tq.waitingJobs > 0 && !tq.paused);
      list = { epoch: ++this.#epochs, tqs, members: new Set(tqs.map((tq) => tq.id)), stale: 0 };
      this.#scanLists.set(vo, list);
    }
    return list;
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
