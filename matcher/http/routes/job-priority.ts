/**
 * `POST /api/jobs/priority`: the user priority (0..10, as in a job description) of a selection of
 * jobs, by ids or by the filters of `/api/jobs/search`. Owners change their own jobs, job
 * administrators those of their VO. Inside an owner's task queues the highest priority is taken
 * first; a change is written into each job's history, and the TQs whose order moved are re-read by
 * every replica.
 */
import { z } from 'zod';
import { PilothouseError, toPilothouseError } from '../../../shared/errors.ts';
import { isoNow } from '../../../shared/clock.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import { parseOrThrow } from '../../../shared/validation.ts';
import { readJsonBody, type Route } from '../router.ts';
import type { RouteDeps } from './context.ts';
import { jobSelectionSchema, selectedIds } from './job-operations.ts';
import { loadVisibleJob } from './jobs.ts';

const prioritySchema = z.int().min(0).max(10);
const bodySchema = z.union(jobSelectionSchema.options.map((option) => option.extend({ priority: prioritySchema })));

export function jobPriorityRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/jobs/priority',
      policy: 'user',
      summary:
        'set the user priority (0..10) of a selection of jobs ({ids} or {search}, and priority), with a result per job',
      docs: { body: bodySchema },
      async handler({ req, principal, logger }) {
        const caller = principal as Principal;
        const raw = await readJsonBody(req, 1024 * 1024);
        if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
          throw new PilothouseError('VALIDATION_FAILED', 'the body must be an object with a selection and a priority');
        }
        const { priority: rawPriority, ...selectionPart } = raw as Record<string, unknown>;
        const priority = parseOrThrow(prioritySchema, rawPriority, 'VALIDATION_FAILED', 'priority');
        const selection = parseOrThrow(jobSelectionSchema, selectionPart, 'BAD_QUERY');
        const results: Record<string, unknown>[] = [];
        const allowed: number[] = [];
        for (const id of await selectedIds(deps, caller, selection)) {
          try {
            allowed.push((await loadVisibleJob(deps, caller, String(id))).id);
          } catch (thrown) {
            const error = toPilothouseError(thrown);
            if (error.httpStatus >= 500) throw error;
            results.push({ jobId: id, ok: false, error: { code: error.code, message: error.message } });
          }
        }
        const { changed, taskQueueIds } = await deps.store.queueAdmin.setJobPriority(allowed, priority, {
          at: isoNow(deps.clock),
          by: caller.subject,
        });
        const byId = new Map(changed.map((change) => [change.jobId, change]));
        for (const jobId of allowed) {
          const change = byId.get(jobId);
          results.push(change ? { ok: true, changed: true, ...change } : { jobId, ok: true, changed: false });
        }
        if (taskQueueIds.length > 0) await deps.cluster.taskQueuesChanged(taskQueueIds);
        logger.info({ priority, changed: changed.length, selected: allowed.length }, 'job priorities set');
        const failed = results.filter((result) => !result.ok).length;
        return {
          status: 200,
          json: { changed: changed.length, unchanged: allowed.length - changed.length, failed, results },
        };
      },
    },
  ];
}
