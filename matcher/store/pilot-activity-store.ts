/**
 * What pilots tell the matcher about themselves, beyond jobs: their shipped logs, drain requests from
 * administrators, their final state and exit reason, the node as their last heartbeat saw it, and the
 * latest resource use of each job (with peaks). Kept apart from the job store: it is written often,
 * read rarely, and can be pruned without touching job history.
 */

export interface PilotLogRecord {
  /** The pilot's own line number (from 1); a replayed line is stored once. */
  seq: number;
  /** The JSON line as the pilot logged it. */
  line: string;
  receivedAt: string;
}

export interface PilotLogPage {
  lines: PilotLogRecord[];
  /** Pass as `afterSeq` to read on; null when nothing more is stored (yet). */
  nextAfterSeq: number | null;
}

export interface AppendLogsOutcome {
  stored: number;
  /** Already stored (a replay after a reconnect). */
  duplicates: number;
  /** Refused because the pilot reached its cap of stored lines. */
  overCap: number;
}

export interface DrainRequest {
  requestedAt: string;
  requestedBy: string;
  reason: string;
}

export interface PilotExitRecord {
  at: string;
  reason: string;
  jobsRun: number | null;
  jobsFailed: number | null;
}

export interface NodeHeartbeat {
  at: string;
  load1: number;
  diskFreeMB: number | null;
}

export interface PilotActivity {
  drain: DrainRequest | null;
  exit: PilotExitRecord | null;
  lastHeartbeat: NodeHeartbeat | null;
  logLines: number;
  /** Lines the pilot dropped (its buffer overflowed) or the matcher refused (cap). */
  droppedLogLines: number;
}

export interface JobUsageSample {
  jobId: number;
  attempt: number;
  at: string;
  cpuSec: number;
  rssMB: number;
  wallSec: number;
  diskMB: number | null;
}

export interface JobUsage extends JobUsageSample {
  peakRssMB: number;
  peakDiskMB: number | null;
  /** The node's 1-minute load at the last sample. */
  load1: number | null;
}

export interface PilotActivityStore {
  /** Stores log lines once per (pilot, seq), up to the per-pilot cap; `dropped` counts the pilot's own losses. */
  appendLogs(
    pilotId: string,
    lines: readonly { seq: number; line: string }[],
    dropped: number,
    at: string,
  ): Promise<AppendLogsOutcome>;
  readLogs(pilotId: string, options: { afterSeq: number; limit: number }): Promise<PilotLogPage>;
  /** Records (or renews) an administrator's drain request; the session delivers it. */
  requestDrain(pilotId: string, request: DrainRequest): Promise<void>;
  recordExit(pilotId: string, exit: PilotExitRecord): Promise<void>;
  recordHeartbeat(pilotId: string, node: NodeHeartbeat | null, jobs: readonly JobUsageSample[]): Promise<void>;
  getActivity(pilotId: string): Promise<PilotActivity>;
  getJobUsage(jobId: number): Promise<JobUsage | null>;
  /** Forgets what is kept about these jobs (their usage), once the jobs are purged. */
  forgetJobs(jobIds: readonly number[]): Promise<void>;
  /** Drops the whole log of each pilot whose latest line came before `before`; how many pilots. */
  prunePilotLogs(before: string): Promise<number>;
  close(): Promise<void>;
}
