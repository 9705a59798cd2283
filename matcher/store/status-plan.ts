/**
 * What a status report does to a job, decided once for every store: DIRAC's state machine says
 * whether it applies (a refused report is still recorded, marked "(SM)"), and what else changes with
 * it — leaving Waiting takes the job out of its task queue's count, leaving the held statuses frees
 * its place in the site's running count. The stores only write what this says.
 */
import { ACTIVE_STATUSES, canTransition, FINAL_STATUSES, type JobStatus } from '../../shared/job/status.ts';
import type { JobStatusReport } from '../../shared/job/model.ts';

export interface StatusPlan {
  next: JobStatus;
  applied: boolean;
  minorStatus: string;
  applicationStatus: string;
  /** The history entry's source ("… (SM)" for a refused report). */
  source: string;
  leavesWaiting: boolean;
  releasesSite: boolean;
  isFinal: boolean;
  /** The pilot spoke: the report counts as a sign of life (heartbeat time). */
  fromPilot: boolean;
}

export function planStatusReport(
  current: { status: JobStatus; minorStatus: string; applicationStatus: string },
  report: JobStatusReport,
): StatusPlan {
  const next = report.status ?? current.status;
  const applied = canTransition(current.status, next);
  return {
    next,
    applied,
    minorStatus: report.minorStatus ?? (next === current.status ? current.minorStatus : ''),
    applicationStatus: report.applicationStatus ?? current.applicationStatus,
    source: applied ? report.source : `${report.source} (SM)`,
    leavesWaiting: applied && current.status === 'Waiting' && next !== 'Waiting',
    releasesSite: applied && ACTIVE_STATUSES.has(current.status) && !ACTIVE_STATUSES.has(next),
    isFinal: FINAL_STATUSES.has(next),
    fromPilot: report.source.startsWith('Pilot'),
  };
}

/**
 * What the job row becomes after several applied reports, oldest first: one row update instead of
 * one per report, with the same result as applying them one by one (the first Running and the first
 * final report set the start and end times, the last exit code and output sandbox given stay).
 */
export interface StatusRowChange {
  status: JobStatus;
  minorStatus: string;
  applicationStatus: string;
  exitCode: number | null;
  outputSandbox: string | null;
  /** Kept only where the row has none yet (coalesce). */
  startedAt: string | null;
  endedAt: string | null;
  /** The last report the pilot sent, if any: a sign of life. */
  heartbeatAt: string | null;
  /** The last applied report's time. */
  at: string;
}

export function foldStatusChange(
  previous: StatusRowChange | null,
  plan: StatusPlan,
  report: JobStatusReport,
): StatusRowChange {
  return {
    status: plan.next,
    minorStatus: plan.minorStatus,
    applicationStatus: plan.applicationStatus,
    exitCode: report.exitCode ?? previous?.exitCode ?? null,
    outputSandbox: report.outputSandbox ?? previous?.outputSandbox ?? null,
    startedAt: previous?.startedAt ?? (plan.next === 'Running' ? report.at : null),
    endedAt: previous?.endedAt ?? (plan.isFinal ? report.at : null),
    heartbeatAt: plan.fromPilot ? report.at : (previous?.heartbeatAt ?? null),
    at: report.at,
  };
}
