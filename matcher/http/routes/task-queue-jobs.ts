/**
 * Kill or reschedule every job of a task queue in one call: the jobs are found page by page (a TQ
 * may hold far more than one bulk call takes) and each goes through the same per-job operation as
 * `POST /api/jobs/kill`, so histories, pilot commands and replicas are told exactly as for one job.
 * The answer counts what changed, what was already so, and what failed by error code.
 */
import { toPilothouseError } from '../../../shared/errors.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import type { Logger } from '../../../shared/logger.ts';
import { ACTIVE_STATUSES, FINAL_STATUSES, JOB_STATUSES, type JobStatus } from '../../../shared/job/status.ts';
import type { RouteDeps } from './context.ts';
import { JOB_OPERATIONS } from './job-operations.ts';

const PAGE_JOBS = 1000;
/** Operations in flight at once: enough for the store to commit them in batches. */
const CONCURRENCY = 64;

export interface TaskQueueJobCounts {
  /** Jobs of the TQ the operation applies to (not ended; for reschedule, held by a pilot). */
  selected: number;
  changed: number;
  /** Selected, but already in the asked state (e.g. killed meanwhile). */
  unchanged: number;
  /** Refused, counted by error code (e.g. JOB_NOT_RESCHEDULABLE: no attempts left). */
  failed: Record<string, number>;
}

export async function applyToTaskQueueJobs(
  deps: RouteDeps,
  caller: Principal,
  taskQueueId: number,
  operation: 'kill' | 'reschedule',
  logger: Logger,
): Promise<TaskQueueJobCounts> {
  const statuses: JobStatus[] =
    operation === 'kill' ? JOB_STATUSES.filter((s) => !FINAL_STATUSES.has(s)) : [...ACTIVE_STATUSES];
  const counts: TaskQueueJobCounts = { selected: 0, changed: 0, unchanged: 0, failed: {} };
  let after: number | undefined;
  for (;;) {
    const page = await deps.store.searchJobs({
      statuses,
      filters: [{ column: 'taskQueueId', operator: 'eq', value: taskQueueId }],
      sort: [{ column: 'id', direction: 'asc' }],
      page: 1,
      perPage: PAGE_JOBS,
      countTotal: false,
      ...(after !== undefined && { after: [after] }),
    });
    if (page.jobs.length === 0) return counts;
    after = page.jobs.at(-1)?.id;
    counts.selected += page.jobs.length;
    for (let start = 0; start < page.jobs.length; start += CONCURRENCY) {
      await Promise.all(
        page.jobs.slice(start, start + CONCURRENCY).map(async (job) => {
          try {
            const result = await JOB_OPERATIONS[operation].apply(deps, caller, job, logger);
            if (operation === 'reschedule' || result.killed === true) counts.changed += 1;
            else counts.unchanged += 1;
          } catch (thrown) {
            const error = toPilothouseError(thrown);
            if (error.httpStatus >= 500) throw error;
            counts.failed[error.code] = (counts.failed[error.code] ?? 0) + 1;
          }
        }),
      );
    }
  }
}
