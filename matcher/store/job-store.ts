/**
 * The job store: the semantic operations the matcher needs, nothing SQL-shaped. Implemented for
 * SQLite (embedded default) and, later, PostgreSQL (several matcher replicas); one conformance suite
 * (test/conformance/job-store.suite.ts) runs against every implementation. Async even where the
 * backend is synchronous, so callers do not depend on which one they have.
 */
import { PilothouseError } from '../../shared/errors.ts';
import type { ScheduleStore } from './schedule-store.ts';
import type { JobDescription } from '../../shared/job/description.ts';
import type { JobHistoryEntry, JobOwnership, JobStatusReport, JobView } from '../../shared/job/model.ts';
import type { JobStatus } from '../../shared/job/status.ts';
import type { JobCommand, OutputTail } from '../../shared/protocol/messages.ts';
import type { JobColumn, JobFilter, JobSortKey } from '../../shared/job/job-search.ts';
import type { TaskQueueDefinition, TaskQueueRequirements } from '../matching/task-queue-key.ts';
import type { QueueAdministration } from './queue-administration.ts';

export interface NewJob {
  ownership: JobOwnership;
  description: JobDescription;
  taskQueue: TaskQueueDefinition;
  /** Set on a run of a recurring schedule: which schedule, and the slot the run stands for. */
  schedule?: { id: number; slotAt: string } | undefined;
}

export interface TaskQueueView extends JobOwnership {
  id: number;
  requirements: TaskQueueRequirements;
  waitingJobs: number;
  /** Highest user priority among its waiting jobs. */
  topPriority: number;
  /** The job this TQ gives next (highest priority, then oldest): FIFO tie-break across TQs. */
  nextJobId: number | null;
  createdAt: string;
  /** An administrator's override: among fitting TQs, the highest boost is served first (default 0). */
  boost: number;
  /** Set while matching skips the TQ (its jobs stay Waiting). */
  paused: TaskQueuePause | null;
}

export interface TaskQueuePause {
  at: string;
  by: string;
  reason: string;
}

export interface ClaimRequest {
  pilotId: string;
  site: string;
  ce: string | null;
  at: string;
  /** The TQ's job type, for the per-site limits. */
  jobType: string;
  /** Jobs of this type already held at this site at which no more are matched (null: no limit). */
  maxRunning: number | null;
  /** After a match of this type at this site, no other for this long (null: no delay). */
  matchingDelaySec: number | null;
}

/** A TQ's waiting jobs after a claim, so that an in-memory index stays exact without a query. */
export interface TaskQueueStats {
  id: number;
  waitingJobs: number;
  topPriority: number;
  nextJobId: number | null;
  /** Told when a claim found the TQ paused (another replica paused it): the index learns it at once. */
  paused?: boolean;
}

export type ClaimRefusal = 'empty' | 'paused' | 'running-limit' | 'matching-delay';

export type ClaimBatchResult =
  | { jobs: JobView[]; reason?: undefined; taskQueue: TaskQueueStats }
  | { jobs: []; reason: ClaimRefusal; taskQueue: TaskQueueStats };

export type ClaimResult =
  { job: JobView; taskQueue: TaskQueueStats } | { job: null; reason: ClaimRefusal; taskQueue: TaskQueueStats };

/** A claim of (at most) one job, told as claimFromTaskQueue tells it. */
export function claimOfOne(claimed: ClaimBatchResult): ClaimResult {
  const [job] = claimed.jobs;
  return job === undefined
    ? { job: null, reason: claimed.reason ?? 'empty', taskQueue: claimed.taskQueue }
    : { job, taskQueue: claimed.taskQueue };
}

/** A one-job claim told as claimJobsFromTaskQueue tells it. */
export function claimOfSeveral(claimed: ClaimResult): ClaimBatchResult {
  return claimed.job === null
    ? { jobs: [], reason: claimed.reason, taskQueue: claimed.taskQueue }
    : { jobs: [claimed.job], taskQueue: claimed.taskQueue };
}

export interface SubmitResult {
  jobIds: number[];
  /** The TQs the jobs were filed into (each once). */
  taskQueueIds: number[];
}

export const SITE_STATUSES = ['Active', 'Banned'] as const;
export type SiteStatus = (typeof SITE_STATUSES)[number];

export interface SiteMaskEntry {
  site: string;
  status: SiteStatus;
  reason: string;
  changedBy: string;
  changedAt: string;
}

/**
 * Cores granted to one fair-share entity, summed over every matcher sharing the store. `scope` names
 * the contest the entity is in (a VO's groups, or one group's owners), `entity` the group or owner.
 */
export interface ShareUsage {
  scope: string;
  entity: string;
  usage: number;
}

/**
 * A setting every matcher sharing the store applies (the scheduling policy): one JSON document per
 * name, with a version that grows with every change so that replicas notice one cheaply.
 */
export interface StoredSetting {
  name: string;
  /** JSON text. */
  value: string;
  version: number;
  updatedAt: string;
  updatedBy: string;
}

/** Which jobs: the shortcut lists (each an IN, an empty one matching nothing) and typed filters, all ANDed. */
export interface JobSelection {
  ids?: number[];
  statuses?: JobStatus[];
  owners?: string[];
  groups?: string[];
  vos?: string[];
  sites?: string[];
  jobTypes?: string[];
  pilotIds?: string[];
  filters?: JobFilter[];
}

export interface JobQuery extends JobSelection {
  /** Sort keys; `id` is added as the last one so every row has one place. */
  sort: JobSortKey[];
  /** 1-based page of `perPage` rows; ignored when `after` is given. */
  page: number;
  perPage: number;
  /** Keyset paging: the sort values (ending with the id) of the row the page starts after. */
  after?: (string | number | null)[];
  /** Count the whole selection (default true); a later keyset page already knows the total. */
  countTotal?: boolean;
}

export interface JobPage {
  /** Jobs in the whole selection, or null when the query did not ask for the count. */
  total: number | null;
  jobs: JobView[];
}

/** One group of a summary: the grouped columns' values, and how many jobs have them. */
export interface JobCount {
  values: Partial<Record<JobColumn, string | number | null>>;
  count: number;
}

/** Groups a summary returns at most (the largest first). */
export const MAX_SUMMARY_GROUPS = 10_000;

/**
 * The pilot a report comes from: the store refuses it (FORBIDDEN) unless the job is matched to that
 * pilot, in its VO — checked on the row the report reads anyway, instead of a read of its own.
 */
export interface ReportingPilot {
  pilotId: string;
  vo: string;
}

/** Throws FORBIDDEN when `heldBy` is given and the job's row says another pilot or VO holds it. */
export function assertReportingPilot(
  jobId: number,
  row: { pilot_id: string | null; vo: string },
  heldBy: ReportingPilot | undefined,
): void {
  if (heldBy !== undefined && (row.pilot_id !== heldBy.pilotId || row.vo !== heldBy.vo)) {
    throw new PilothouseError('FORBIDDEN', `job ${jobId} is not held by pilot ${heldBy.pilotId}`, { jobId });
  }
}

export interface StatusOutcome {
  applied: boolean;
  status: JobStatus;
  /** True when the same report (same attempt and sequence) was already recorded: a replay. */
  duplicate: boolean;
}

/** A status report with its idempotency key (see JobStore.reportStatus). */
export interface KeyedStatusReport {
  report: JobStatusReport;
  reportKey?: string | undefined;
}

export interface PurgeRequest {
  finalBefore: string | null;
  deletedBefore: string | null;
  limit: number;
}

/** Final statuses purged after `finalBefore` (Deleted has its own cutoff). */
export const PURGED_FINAL_STATUSES = ['Done', 'Completed', 'Failed', 'Killed'] as const;

export interface StoredOutputTail extends OutputTail {
  attempt: number;
  updatedAt: string;
}

export interface HeartbeatSample {
  cpuSec: number;
  rssMB: number;
  wallSec: number;
}

export interface SandboxRecord {
  sha256: string;
  sizeBytes: number;
  vo: string;
  owner: string;
  createdAt: string;
}

/** A job held by a pilot, with its last sign of life (for the fault sweeper). */
export interface HeldJob {
  id: number;
  attempt: number;
  status: JobStatus;
  pilotId: string | null;
  /** The latest of its last heartbeat and its last status change (a Stalled mark does not count). */
  lastSignAt: string;
}

export interface RescheduleRequest {
  at: string;
  reason: string;
  holdUntil: string;
  maxAttempts: number;
  source: string;
  onLimit: 'fail' | 'refuse';
  /** Also from Done, Failed or Killed (a user's reschedule); the sweeper only ends held attempts. */
  allowFinished: boolean;
}

export type RescheduleOutcome =
  /** A new attempt, held as Rescheduled until `holdUntil`, then Waiting again. */
  | { kind: 'rescheduled'; attempt: number; holdUntil: string }
  /** Too many attempts already: Failed, with the reason in its minor status. */
  | { kind: 'failed' }
  /** `maxAttempts` are used up and the request said to refuse then: nothing done. */
  | { kind: 'limit-reached' }
  /** The attempt is no longer current, or the job is in no status to reschedule from: nothing done. */
  | { kind: 'stale'; status: JobStatus | null };

export interface JobStore {
  /**
   * True when writes requested one after another, without waiting for the first to settle, are
   * applied in the order they were requested (SQLite: one writer, group commits in queue order).
   * False when they may run concurrently (PostgreSQL: a pool of connections). A pilot session
   * pipelines its status reports only when this is true.
   */
  readonly appliesWritesInOrder: boolean;
  /** Pausing and boosting task queues, the user priority of jobs (queue-administration.ts). */
  readonly queueAdmin: QueueAdministration;
  /** Recurring jobs (schedule-store.ts): their runs' jobs are stored with this store's. */
  readonly schedules: ScheduleStore;
  /** Stores jobs with their history (Received → Checking → Waiting) and files them into TQs; all or nothing. */
  submitJobs(jobs: NewJob[], at: string): Promise<SubmitResult>;
  getJob(id: number): Promise<JobView | null>;
  getJobHistory(id: number): Promise<JobHistoryEntry[]>;
  searchJobs(query: JobQuery): Promise<JobPage>;
  /** Counts of the selected jobs grouped by the given columns, largest first, at most MAX_SUMMARY_GROUPS. */
  summarizeJobs(selection: JobSelection, groupBy: readonly JobColumn[]): Promise<JobCount[]>;
  /** TQs that have waiting jobs, optionally of one VO. */
  listTaskQueues(filter: { vo?: string }): Promise<TaskQueueView[]>;
  /**
   * The same, a page at a time: TQs with waiting jobs whose id is above `afterId`, by id, at most
   * `limit` (the matcher's periodic refresh reads tens of thousands of TQs without holding the
   * event loop for the whole list).
   */
  listTaskQueuesAfter(afterId: number, limit: number): Promise<TaskQueueView[]>;
  getTaskQueue(id: number): Promise<TaskQueueView | null>;
  /**
   * Atomically takes the best waiting job of a TQ for a pilot (Waiting → Matched), unless the TQ is
   * empty or the site's running limit or matching delay for the job type forbids it.
   */
  claimFromTaskQueue(taskQueueId: number, claim: ClaimRequest): Promise<ClaimResult>;
  /**
   * The same for up to `count` jobs at once (one offer with room for several): the TQ's best waiting
   * jobs, best first, taken in one write. When a running limit or matching delay applies, at most one
   * (those are decided match by match). `jobs` is empty exactly when `reason` says why.
   */
  claimJobsFromTaskQueue(taskQueueId: number, claim: ClaimRequest, count: number): Promise<ClaimBatchResult>;
  /** Jobs held by pilots at a site, by job type (what running limits count). */
  runningAtSite(site: string): Promise<Record<string, number>>;
  setSiteStatus(entry: SiteMaskEntry): Promise<void>;
  /** Sites that were ever banned or allowed, with their current status. Sites never mentioned are Active. */
  siteMask(): Promise<SiteMaskEntry[]>;
  getSetting(name: string): Promise<StoredSetting | null>;
  /** Adds a matcher's usage since its last call to the shared totals, and returns every total. */
  addShareUsage(deltas: readonly ShareUsage[]): Promise<ShareUsage[]>;
  /** Stores the setting unless it exists; returns it as stored either way (the first writer wins). */
  createSetting(name: string, value: string, change: { at: string; by: string }): Promise<StoredSetting>;
  /** Replaces the setting (its version goes up by one, the old value stays in its history) and returns it. */
  putSetting(name: string, value: string, change: { at: string; by: string }): Promise<StoredSetting>;
  /**
   * Replaces the setting only if its version is still `expectedVersion` (0: it must not exist yet):
   * an edit based on what a caller read never overwrites a change made meanwhile. Null when it moved.
   */
  replaceSetting(
    name: string,
    value: string,
    change: { at: string; by: string },
    expectedVersion: number,
  ): Promise<StoredSetting | null>;
  /** The versions of a setting, newest first (at most `limit`). */
  settingHistory(name: string, limit: number): Promise<StoredSetting[]>;
  /**
   * Applies one report about one attempt through the state machine and records it in the history.
   * `reportKey` makes replays idempotent: a report with a key already recorded changes nothing.
   * Throws JOB_NOT_FOUND, ATTEMPT_MISMATCH when the attempt is not the job's current one, or FORBIDDEN
   * when `heldBy` is given and another pilot (or none) holds the job.
   */
  reportStatus(
    jobId: number,
    attempt: number,
    report: JobStatusReport,
    reportKey?: string,
    heldBy?: ReportingPilot,
  ): Promise<StatusOutcome>;
  /**
   * Several reports about one attempt, oldest first, applied in that order in one write (a short
   * job's Running ... Done sent in one frame): one outcome per report, each as reportStatus would
   * give it. The checks about the attempt (exists, current, held by `heldBy`) are made once, and a
   * failing one fails them all: nothing is recorded.
   */
  reportStatuses(
    jobId: number,
    attempt: number,
    reports: readonly KeyedStatusReport[],
    heldBy?: ReportingPilot,
  ): Promise<StatusOutcome[]>;
  /**
   * Kills a job: Killed at once (the state machine then refuses the pilot's later reports), and, when a
   * pilot holds it, a kill command for its current attempt, delivered once with the next heartbeat or push.
   */
  killJob(jobId: number, at: string, source: string): Promise<StatusOutcome & { commandQueued: boolean }>;
  /** The commands pending for that attempt, marked sent (each is delivered once). */
  takePendingCommands(jobId: number, attempt: number, at: string): Promise<JobCommand[]>;
  /** Records a heartbeat and returns the commands pending for that attempt (each delivered once). */
  recordHeartbeat(jobId: number, attempt: number, sample: HeartbeatSample, at: string): Promise<JobCommand[]>;
  /**
   * Keeps the payload's last output for that attempt (replacing the previous one); nothing when the
   * attempt is no longer the job's current one, or when `heldBy` is given and another pilot or VO
   * holds the job (checked on the row the write reads, so the caller need not read it first).
   */
  recordOutputTail(
    jobId: number,
    attempt: number,
    tail: OutputTail,
    at: string,
    heldBy?: ReportingPilot,
  ): Promise<void>;
  /** The last output recorded for the job (of its latest attempt that sent one), or null. */
  getOutputTail(jobId: number): Promise<StoredOutputTail | null>;
  /** Jobs in these statuses whose last sign of life is older than `before`. */
  findHeldJobs(statuses: readonly JobStatus[], before: string): Promise<HeldJob[]>;
  /**
   * Running/Completing → Stalled for that attempt (its last update time is kept, so staleness keeps
   * counting); `source` is who noticed, in the history (default FaultSweeper).
   */
  markStalled(jobId: number, attempt: number, at: string, source?: string): Promise<boolean>;
  /**
   * Ends the attempt of a job held by a pilot (a kill command is queued for it, the site's running count
   * released), or of a finished job when `allowFinished`, and starts a new one, held as Rescheduled
   * until `holdUntil`. When `maxAttempts` are used up: Failed (`onLimit: 'fail'`, the sweeper) or
   * nothing (`'refuse'`, a user's request).
   */
  rescheduleJob(jobId: number, attempt: number, request: RescheduleRequest): Promise<RescheduleOutcome>;
  /** Rescheduled jobs whose hold is over become Waiting again: how many, and the TQs they went back to. */
  releaseRescheduled(at: string): Promise<{ jobs: number; taskQueueIds: number[] }>;
  /**
   * Removes at most `limit` jobs in a final status whose last update is before the cutoff for their
   * status (Done, Completed, Failed, Killed: `finalBefore`; Deleted: `deletedBefore`; null: kept),
   * with their history, commands, output tails and sandbox links; and at most `limit` records of
   * schedules' slots decided before `finalBefore`. Returns the jobs' ids.
   */
  purgeJobs(request: PurgeRequest): Promise<number[]>;
  /**
   * Forgets at most `limit` sandboxes not used since `before` that no job in the store names (as input,
   * or as its current output); returns their checksums, whose files the caller deletes.
   */
  purgeUnusedSandboxes(before: string, limit: number): Promise<string[]>;
  /** Records an uploaded sandbox; a second upload of the same bytes keeps the first owner. */
  recordSandbox(sandbox: SandboxRecord): Promise<void>;
  getSandbox(sha256: string): Promise<SandboxRecord | null>;
  /** Bytes of the sandboxes recorded for this VO (each counted once, for the VO that first uploaded it). */
  sandboxBytesOfVo(vo: string): Promise<number>;
  close(): Promise<void>;
}
