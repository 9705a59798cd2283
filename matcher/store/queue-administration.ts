/**
 * What administrators change on the waiting work at run time, as store operations: pausing and
 * boosting task queues, the user priority of jobs. Every change is written into the history of each
 * job it touches (a row with the job's status as it was and a note saying what happened and who did
 * it), in the same transaction as the change.
 */
import type { JobStatus } from '../../shared/job/status.ts';
import type { TaskQueueView } from './job-store.ts';

export interface AdminChange {
  at: string;
  /** Who asked (a token's subject), recorded as the history rows' source. */
  by: string;
}

/** The minor status of the Waiting jobs of a paused TQ (the reason is in their history's note). */
export const PAUSED_MINOR_STATUS = 'Task queue paused';
/** DIRAC's minor status of a job waiting for a pilot, given back when its TQ resumes. */
export const WAITING_MINOR_STATUS = 'Pilot Agent Submission';

export interface TaskQueueChangeResult {
  taskQueue: TaskQueueView;
  /** False when the TQ already was in the asked state (nothing written). */
  changed: boolean;
  /** Waiting jobs whose history got a row. */
  jobs: number;
}

export interface PriorityChange {
  jobId: number;
  status: JobStatus;
  previous: number;
  priority: number;
}

export interface QueueAdministration {
  /** Pauses the TQ (`pause` given) or resumes it (null); null when no such TQ exists. */
  setTaskQueuePaused(
    id: number,
    pause: { reason: string } | null,
    change: AdminChange,
  ): Promise<TaskQueueChangeResult | null>;
  /** Sets the TQ's boost; null when no such TQ exists. */
  setTaskQueueBoost(id: number, boost: number, change: AdminChange): Promise<TaskQueueChangeResult | null>;
  /**
   * Sets the user priority of these jobs, skipping those in a final status and those already at it;
   * returns the changes and the TQs whose order of waiting jobs moved.
   */
  setJobPriority(
    jobIds: readonly number[],
    priority: number,
    change: AdminChange,
  ): Promise<{ changed: PriorityChange[]; taskQueueIds: number[] }>;
  /** When each TQ's oldest waiting job was submitted (TQs without waiting jobs are left out). */
  oldestWaitingJobs(taskQueueIds: readonly number[]): Promise<Map<number, string>>;
}
