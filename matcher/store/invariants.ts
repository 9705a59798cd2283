/**
 * What must hold in a job store whatever happened to it (crashes, replays, races between matchers):
 *
 *   held-without-pilot   a job a pilot holds (Matched, Running, Completing, Stalled) names that pilot
 *   history-transition   each applied history entry follows DIRAC's state machine from the one before
 *                        (or is a reschedule of a finished job, which DIRAC forces)
 *   history-attempt      attempts only grow, and a new one starts right after Rescheduled
 *   history-current      the last applied entry is the job's status and attempt (a job held after a
 *                        reschedule: Rescheduled, of the attempt before the one it counts)
 *   running-counter      per (site, job type), the running counter equals the jobs held there
 *   waiting-counter      a task queue's waiting count equals its Waiting jobs
 *   orphan-waiting       every Waiting job belongs to a task queue that exists
 *
 * The checker is pure over a snapshot (so its own test can hand it each broken case); `readSnapshot`
 * takes one from any JobStore through its public interface. Used by the fuzz suites and the chaos run.
 */
import {
  ACTIVE_STATUSES,
  canTransition,
  RESCHEDULABLE_FINAL_STATUSES,
  type JobStatus,
} from '../../shared/job/status.ts';
import type { JobHistoryEntry, JobView } from '../../shared/job/model.ts';
import type { JobStore } from './job-store.ts';

export type InvariantName =
  | 'held-without-pilot'
  | 'history-transition'
  | 'history-attempt'
  | 'history-current'
  | 'running-counter'
  | 'waiting-counter'
  | 'orphan-waiting';

export interface InvariantViolation {
  invariant: InvariantName;
  detail: string;
}

export type SnapshotJob = Pick<JobView, 'id' | 'status' | 'attempt' | 'pilotId' | 'site' | 'jobType' | 'taskQueueId'>;

export interface StoreSnapshot {
  jobs: SnapshotJob[];
  /** Each job's history, oldest first. */
  histories: ReadonlyMap<number, readonly Pick<JobHistoryEntry, 'attempt' | 'status' | 'applied'>[]>;
  taskQueues: { id: number; waitingJobs: number }[];
  /** site -> job type -> running counter. */
  running: ReadonlyMap<string, Record<string, number>>;
}

export function checkInvariants(snapshot: StoreSnapshot): InvariantViolation[] {
  const violations: InvariantViolation[] = [];
  const fail = (invariant: InvariantName, detail: string): void => void violations.push({ invariant, detail });

  const heldAt = new Map<string, number>();
  const waitingIn = new Map<number, number>();
  const queues = new Map(snapshot.taskQueues.map((tq) => [tq.id, tq.waitingJobs]));
  for (const job of snapshot.jobs) {
    if (ACTIVE_STATUSES.has(job.status)) {
      if (job.pilotId === null) fail('held-without-pilot', `job ${job.id} is ${job.status} with no pilot`);
      if (job.site !== null) heldAt.set(key(job), (heldAt.get(key(job)) ?? 0) + 1);
    }
    if (job.status === 'Waiting') {
      if (job.taskQueueId === null || !queues.has(job.taskQueueId)) {
        fail('orphan-waiting', `job ${job.id} is Waiting in task queue ${job.taskQueueId}, which does not exist`);
      } else waitingIn.set(job.taskQueueId, (waitingIn.get(job.taskQueueId) ?? 0) + 1);
    }
    checkHistory(job, snapshot.histories.get(job.id) ?? [], fail);
  }

  for (const [id, counted] of queues) {
    const actual = waitingIn.get(id) ?? 0;
    if (counted !== actual) fail('waiting-counter', `task queue ${id} counts ${counted} waiting jobs, holds ${actual}`);
  }
  const counters = new Map<string, number>();
  for (const [site, byType] of snapshot.running) {
    for (const [jobType, running] of Object.entries(byType)) counters.set(key({ site, jobType }), running);
  }
  for (const pair of new Set([...counters.keys(), ...heldAt.keys()])) {
    const counted = counters.get(pair) ?? 0;
    const held = heldAt.get(pair) ?? 0;
    if (counted !== held) {
      const [site, jobType] = pair.split('\u0000');
      fail('running-counter', `site ${site}, job type ${jobType}: running counter ${counted}, jobs held ${held}`);
    }
  }
  return violations;
}

function key(job: { site: string | null; jobType: string }): string {
  return `${job.site}\u0000${job.jobType}`;
}

function checkHistory(
  job: SnapshotJob,
  history: readonly Pick<JobHistoryEntry, 'attempt' | 'status' | 'applied'>[],
  fail: (invariant: InvariantName, detail: string) => void,
): void {
  let previous: { status: JobStatus; attempt: number } | null = null;
  for (const [index, entry] of history.entries()) {
    if (!entry.applied) continue;
    if (previous !== null) {
      if (entry.attempt < previous.attempt) {
        fail('history-attempt', `job ${job.id} entry ${index}: attempt ${entry.attempt} after ${previous.attempt}`);
      } else if (entry.attempt > previous.attempt && previous.status !== 'Rescheduled') {
        fail(
          'history-attempt',
          `job ${job.id} entry ${index}: attempt ${entry.attempt} begins after ${previous.status}, not Rescheduled`,
        );
      }
      const forcedReschedule = entry.status === 'Rescheduled' && RESCHEDULABLE_FINAL_STATUSES.has(previous.status);
      if (!canTransition(previous.status, entry.status) && !forcedReschedule) {
        fail('history-transition', `job ${job.id} entry ${index}: ${previous.status} -> ${entry.status}`);
      }
    }
    previous = { status: entry.status, attempt: entry.attempt };
  }
  if (previous === null) return;
  // Held after a reschedule, the job already counts its next attempt; that attempt's first entry is
  // written when the job waits again. Its last entry is the Rescheduled of the attempt before.
  const heldReschedule =
    job.status === 'Rescheduled' && previous.status === 'Rescheduled' && job.attempt === previous.attempt + 1;
  if (!heldReschedule && (previous.status !== job.status || previous.attempt !== job.attempt)) {
    fail(
      'history-current',
      `job ${job.id} is ${job.status} (attempt ${job.attempt}), its history ends at ${previous.status} (attempt ${previous.attempt})`,
    );
  }
}

/** A snapshot of a whole store, page by page (for test and chaos sizes, not a production database). */
export async function readSnapshot(store: JobStore, perPage = 1_000): Promise<StoreSnapshot> {
  const jobs: SnapshotJob[] = [];
  for (let page = 1; ; page += 1) {
    const result = await store.searchJobs({ sort: [{ column: 'id', direction: 'asc' }], page, perPage });
    jobs.push(...result.jobs);
    if (result.jobs.length < perPage) break;
  }
  const histories = new Map<number, JobHistoryEntry[]>();
  for (const job of jobs) histories.set(job.id, await store.getJobHistory(job.id));
  const running = new Map<string, Record<string, number>>();
  for (const site of new Set(jobs.map((job) => job.site).filter((site): site is string => site !== null))) {
    running.set(site, await store.runningAtSite(site));
  }
  const taskQueues = (await store.listTaskQueues({})).map((tq) => ({ id: tq.id, waitingJobs: tq.waitingJobs }));
  return { jobs, histories, taskQueues, running };
}
