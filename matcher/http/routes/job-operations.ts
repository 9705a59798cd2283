/**
 * What an owner (or a job administrator) does to jobs: kill, reschedule, delete. On one job
 * (`POST /api/jobs/{id}/kill`...), or on a selection (`POST /api/jobs/kill` with `{ids}` or with
 * `{search}`, the filters of `/api/jobs/search`), answered job by job: a selection where some jobs
 * cannot take the operation still applies it to the others, and says which and why.
 */
import { z } from 'zod';
import { PilothouseError, toPilothouseError } from '../../../shared/errors.ts';
import { isoNow } from '../../../shared/clock.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import { ACTIVE_STATUSES, canTransition } from '../../../shared/job/status.ts';
import type { JobView } from '../../../shared/job/model.ts';
import { parseOrThrow } from '../../../shared/validation.ts';
import type { Logger } from '../../../shared/logger.ts';
import { readJsonBody, type Route } from '../router.ts';
import type { RouteDeps } from './context.ts';
import type { JobQuery } from '../../store/job-store.ts';
import { loadVisibleJob } from './jobs.ts';
import { filterListSchema, jobSelectionOf, selectionSchema as searchSelectionSchema } from './job-search-query.ts';

/** Jobs one selection may touch (a bigger one is refused: narrow the filters). */
export const MAX_JOBS_PER_OPERATION = 10_000;

export type JobOperation = 'kill' | 'reschedule' | 'delete';
type Result = Record<string, unknown> & { jobId: number };
type Apply = (deps: RouteDeps, caller: Principal, job: JobView, logger: Logger) => Promise<Result>;

export const JOB_OPERATIONS: Record<JobOperation, { summary: string; apply: Apply }> = {
  kill: { summary: 'Killed at once; a running payload is stopped by its pilot', apply: kill },
  reschedule: {
    summary: 'run again as a new attempt (from Done, Failed, Killed, or while a pilot holds it)',
    apply: reschedule,
  },
  delete: { summary: 'Deleted (a job still running is killed first); kept, but out of sight', apply: remove },
};

export const jobSelectionSchema = z.union([
  z.strictObject({ ids: z.array(z.int().positive()).min(1).max(MAX_JOBS_PER_OPERATION) }),
  // The filters of /api/jobs/search: its `search` list alone, or a whole selection with the shortcut lists.
  z.strictObject({
    search: z.union([filterListSchema.transform((search) => ({ search })), searchSelectionSchema]),
  }),
]);

export function jobOperationRoutes(deps: RouteDeps): Route[] {
  return (Object.keys(JOB_OPERATIONS) as JobOperation[]).flatMap((name): Route[] => [
    {
      method: 'POST',
      path: `/api/jobs/:id/${name}`,
      policy: 'user',
      summary: `${name} a job: ${JOB_OPERATIONS[name].summary}`,
      docs: { body: 'none' },
      async handler({ params, principal, logger }) {
        const caller = principal as Principal;
        const job = await loadVisibleJob(deps, caller, params.id);
        return { status: 200, json: await JOB_OPERATIONS[name].apply(deps, caller, job, logger) };
      },
    },
    {
      method: 'POST',
      path: `/api/jobs/${name}`,
      policy: 'user',
      summary: `${name} a selection of jobs ({ids: [...]} or {search: {filters}}), with a result per job`,
      docs: { body: jobSelectionSchema },
      async handler({ req, principal, logger }) {
        const caller = principal as Principal;
        const selection = parseOrThrow(jobSelectionSchema, await readJsonBody(req, 1024 * 1024), 'BAD_QUERY');
        const results: Result[] = [];
        for (const id of await selectedIds(deps, caller, selection)) {
          try {
            const job = await loadVisibleJob(deps, caller, String(id));
            results.push({ ok: true, ...(await JOB_OPERATIONS[name].apply(deps, caller, job, logger)) });
          } catch (thrown) {
            const error = toPilothouseError(thrown);
            if (error.httpStatus >= 500) throw error;
            results.push({ jobId: id, ok: false, error: { code: error.code, message: error.message } });
          }
        }
        const done = results.filter((result) => result.ok).length;
        return { status: 200, json: { done, failed: results.length - done, results } };
      },
    },
  ]);
}

/** The ids a selection names: its list, or the jobs its search finds (at most MAX_JOBS_PER_OPERATION). */
export async function selectedIds(
  deps: RouteDeps,
  caller: Principal,
  selection: z.output<typeof jobSelectionSchema>,
): Promise<number[]> {
  if ('ids' in selection) return [...new Set(selection.ids)];
  const query: JobQuery = {
    ...jobSelectionOf(caller, selection.search, deps.clock.nowMs()),
    sort: [{ column: 'id', direction: 'asc' }],
    page: 1,
    perPage: MAX_JOBS_PER_OPERATION,
  };
  const page = await deps.store.searchJobs(query);
  if ((page.total ?? 0) > MAX_JOBS_PER_OPERATION) {
    throw new PilothouseError(
      'BAD_QUERY',
      `the search selects ${page.total} jobs, more than the ${MAX_JOBS_PER_OPERATION} one call may touch: narrow it`,
      { field: 'search' },
    );
  }
  return page.jobs.map((job) => job.id);
}

async function kill(deps: RouteDeps, caller: Principal, job: JobView, logger: Logger): Promise<Result> {
  const outcome = await deps.store.killJob(job.id, isoNow(deps.clock), caller.subject);
  if (outcome.commandQueued && job.pilotId) deps.cluster.commandsQueued(job.pilotId, job.id, job.attempt);
  logger.info({ jobId: job.id, applied: outcome.applied }, 'job kill requested');
  return { jobId: job.id, status: outcome.status, killed: outcome.applied };
}

async function reschedule(deps: RouteDeps, caller: Principal, job: JobView, logger: Logger): Promise<Result> {
  const at = isoNow(deps.clock);
  const outcome = await deps.store.rescheduleJob(job.id, job.attempt, {
    at,
    reason: `Rescheduled by ${caller.subject}`,
    holdUntil: at, // a user's request waits for no delay
    maxAttempts: deps.maxAttempts,
    source: caller.subject,
    onLimit: 'refuse',
    allowFinished: true,
  });
  if (outcome.kind === 'limit-reached' || outcome.kind === 'failed') {
    throw new PilothouseError('JOB_NOT_RESCHEDULABLE', `job ${job.id} has used all its ${deps.maxAttempts} attempts`, {
      jobId: job.id,
    });
  }
  if (outcome.kind === 'stale') {
    throw new PilothouseError(
      'JOB_NOT_RESCHEDULABLE',
      `job ${job.id} is ${outcome.status ?? 'gone'}: only Done, Failed, Killed jobs and jobs held by a pilot are rescheduled`,
      { jobId: job.id },
    );
  }
  // The old attempt's pilot hears of the kill at once; the job waits again at once.
  if (job.pilotId) deps.cluster.commandsQueued(job.pilotId, job.id, job.attempt);
  await deps.cluster.jobsWaiting((await deps.store.releaseRescheduled(at)).taskQueueIds);
  logger.info({ jobId: job.id, attempt: outcome.attempt }, 'job rescheduled by its owner');
  return { jobId: job.id, attempt: outcome.attempt, status: 'Waiting' };
}

/** DIRAC's delete: the job ends as Deleted; one a pilot holds (or that waits to run) is killed first. */
async function remove(deps: RouteDeps, caller: Principal, job: JobView, logger: Logger): Promise<Result> {
  let current = job;
  if (ACTIVE_STATUSES.has(job.status) || !canTransition(job.status, 'Deleted')) {
    await kill(deps, caller, job, logger);
    current = (await deps.store.getJob(job.id)) ?? job;
  }
  if (current.status === 'Deleted') return { jobId: job.id, status: 'Deleted', deleted: false };
  const outcome = await deps.store.reportStatus(job.id, current.attempt, {
    status: 'Deleted',
    minorStatus: `Deleted by ${caller.subject}`,
    at: isoNow(deps.clock),
    source: caller.subject,
  });
  if (!outcome.applied) {
    throw new PilothouseError('JOB_NOT_DELETABLE', `job ${job.id} is ${outcome.status}: it cannot be deleted now`, {
      jobId: job.id,
    });
  }
  logger.info({ jobId: job.id }, 'job deleted by its owner');
  return { jobId: job.id, status: 'Deleted', deleted: true };
}
