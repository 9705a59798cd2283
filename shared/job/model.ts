import type { JobDescription } from './description.ts';
import type { JobStatus } from './status.ts';

/** Who a job belongs to: forced from the submitter's token, never taken from the description. */
export interface JobOwnership {
  vo: string;
  group: string;
  owner: string;
}

/** One row of a job's status history. `applied: false` marks an update the state machine refused. */
export interface JobHistoryEntry {
  at: string;
  /** The attempt the entry belongs to (a rescheduled job starts a new one). */
  attempt: number;
  status: JobStatus;
  minorStatus: string;
  applicationStatus: string;
  source: string;
  applied: boolean;
  /** Why an administrator touched the job (a pause, a boost, a new priority); its status stays as it was. */
  note?: string;
}

/** The job as the REST API shows it. Times are ISO-8601 UTC strings. */
export interface JobView extends JobOwnership {
  id: number;
  name: string;
  jobType: string;
  /** The description's job group (DIRAC's JobGroup), or null. */
  jobGroup: string | null;
  priority: number;
  status: JobStatus;
  minorStatus: string;
  applicationStatus: string;
  exitCode: number | null;
  site: string | null;
  ce: string | null;
  pilotId: string | null;
  attempt: number;
  taskQueueId: number | null;
  submittedAt: string;
  startedAt: string | null;
  endedAt: string | null;
  lastUpdateAt: string;
  heartbeatAt: string | null;
  outputSandbox: string | null;
  description: JobDescription;
  /** A run of a recurring schedule: its id and the slot the run stands for (absent otherwise). */
  scheduleId?: number;
  scheduleSlot?: string;
}

export interface JobWithHistory extends JobView {
  history: JobHistoryEntry[];
}

/** A status report about one attempt of a job (from a pilot, an admin or a sweeper). */
export interface JobStatusReport {
  status?: JobStatus | undefined;
  minorStatus?: string | undefined;
  applicationStatus?: string | undefined;
  exitCode?: number | undefined;
  outputSandbox?: string | undefined;
  /** When it happened, ISO-8601; the store orders by it. */
  at: string;
  source: string;
}
