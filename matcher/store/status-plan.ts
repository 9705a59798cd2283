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
