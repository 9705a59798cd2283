/**
 * Job statuses and DIRAC's transition table (JobStatus.JobsStateMachine). The table is kept exactly:
 * communities rely on its meaning. A disallowed update is not an error: it is recorded in the history
 * (marked not applied) and the job keeps its status. `force` (admins, the stalled-job sweeper) bypasses it.
 */
export const JOB_STATUSES = [
  'Submitting',
  'Received',
  'Checking',
  'Staging',
  'Waiting',
  'Matched',
  'Rescheduled',
  'Running',
  'Stalled',
  'Completing',
  'Completed',
  'Done',
  'Failed',
  'Killed',
  'Deleted',
] as const;

export type JobStatus = (typeof JOB_STATUSES)[number];

const TRANSITIONS: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  Submitting: ['Received', 'Checking', 'Deleted', 'Killed'],
  Received: ['Checking', 'Waiting', 'Failed', 'Deleted', 'Killed'],
  Checking: ['Staging', 'Waiting', 'Rescheduled', 'Failed', 'Deleted', 'Killed'],
  Staging: ['Checking', 'Waiting', 'Failed', 'Killed'],
  Waiting: ['Matched', 'Rescheduled', 'Deleted', 'Killed'],
  Matched: ['Running', 'Failed', 'Rescheduled', 'Killed'],
  Rescheduled: ['Waiting', 'Received', 'Deleted', 'Failed', 'Killed'],
  Running: ['Stalled', 'Done', 'Failed', 'Rescheduled', 'Completing', 'Killed', 'Received'],
  Stalled: ['Running', 'Failed', 'Killed'],
  Completing: ['Done', 'Failed', 'Completed', 'Stalled', 'Killed'],
  Completed: ['Done', 'Failed'],
  Done: ['Deleted'],
  Failed: ['Rescheduled', 'Deleted'],
  Killed: ['Deleted'],
  Deleted: [],
};

/** Payload work is over: the attempt ended. */
export const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['Done', 'Completed', 'Failed', 'Killed', 'Deleted']);

/**
 * Finished jobs a user or an administrator may reschedule: DIRAC's rescheduleJob forces the move to
 * Rescheduled from these, outside the transition table (which only allows it from Failed).
 */
export const RESCHEDULABLE_FINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['Done', 'Failed', 'Killed']);

/** A pilot holds the job: heartbeats are expected. */
export const ACTIVE_STATUSES: ReadonlySet<JobStatus> = new Set(['Matched', 'Running', 'Completing', 'Stalled']);

export function isJobStatus(value: unknown): value is JobStatus {
  return typeof value === 'string' && (JOB_STATUSES as readonly string[]).includes(value);
}

/**
 * Whether `from → to` is allowed. A job that is Stalled is judged as if Running (DIRAC's leniency:
 * a pilot that comes back may carry on). Staying in the same status is always allowed (minor status
 * and application status updates).
 */
export function canTransition(from: JobStatus, to: JobStatus): boolean {
  if (from === to) return true;
  const effectiveFrom = from === 'Stalled' ? 'Running' : from;
  return TRANSITIONS[effectiveFrom].includes(to) || TRANSITIONS[from].includes(to);
}

export function allowedNextStatuses(from: JobStatus): readonly JobStatus[] {
  return TRANSITIONS[from];
}
