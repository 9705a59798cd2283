/**
 * Task queues for administrators: the list with filters and sorting, one TQ with where it stands and
 * why nothing takes it, and the operations that steer it at run time (pause, resume, boost, kill or
 * reschedule all its jobs). Job administrators act within their VO, service administrators
 * everywhere; a TQ of another VO is refused (FORBIDDEN), as a job of another VO is.
 */
import { z } from 'zod';
import { PilothouseError } from '../../../shared/errors.ts';
import { isoNow } from '../../../shared/clock.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import { parseOrThrow } from '../../../shared/validation.ts';
import { isAdministrator, isJobAdministratorFor } from '../../auth/policy.ts';
import type { TaskQueueView } from '../../store/job-store.ts';
import type { AdminChange, TaskQueueChangeResult } from '../../store/queue-administration.ts';
import { readJsonBody, type Route } from '../router.ts';
import { parseId, type RouteDeps } from './context.ts';
import { applyToTaskQueueJobs } from './task-queue-jobs.ts';
import { describeTaskQueue } from './task-queue-detail.ts';

/** Boosts an administrator may give: enough to order a few urgent campaigns, not a free integer. */
export const MAX_BOOST = 1000;

const SORTS = ['id', 'waiting', '-waiting', 'oldest', '-oldest', 'boost', '-boost'] as const;
const listQuerySchema = z.strictObject({
  vo: z.string().min(1).max(128).optional(),
  group: z.string().min(1).max(128).optional(),
  owner: z.string().min(1).max(256).optional(),
  jobType: z.string().min(1).max(128).optional(),
  paused: z.enum(['true', 'false']).optional(),
  sort: z.enum(SORTS).default('-waiting'),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});
const pauseSchema = z.strictObject({ reason: z.string().min(1).max(1024) });
const boostSchema = z.strictObject({ boost: z.int().min(-MAX_BOOST).max(MAX_BOOST) });
const ownerBoostSchema = z.strictObject({
  owner: z.string().min(1).max(256),
  vo: z.string().min(1).max(128).optional(),
  boost: z.int().min(-MAX_BOOST).max(MAX_BOOST),
});

/** The TQ if the caller administers its VO; TASK_QUEUE_NOT_FOUND when unknown, FORBIDDEN when not theirs. */
export async function loadTaskQueue(
  deps: RouteDeps,
  caller: Principal,
  rawId: string | undefined,
): Promise<TaskQueueView> {
  const id = parseId(rawId, 'id');
  const tq = await deps.store.getTaskQueue(id);
  if (!tq) throw new PilothouseError('TASK_QUEUE_NOT_FOUND', `no task queue ${id}`, { taskQueueId: id });
  if (!isJobAdministratorFor(caller, tq.vo)) {
    throw new PilothouseError('FORBIDDEN', `task queue ${id} is of VO ${tq.vo}, which you do not administer`, {
      taskQueueId: id,
    });
  }
  return tq;
}

function sortTaskQueues(list: (TaskQueueView & { oldestWaitingSince: string | null })[], sort: (typeof SORTS)[number]) {
  const descending = sort.startsWith('-');
  const key = sort.replace('-', '');
  const value = (tq: (typeof list)[number]): number | string =>
    key === 'waiting'
      ? tq.waitingJobs
      : key === 'boost'
        ? tq.boost
        : key === 'oldest'
          ? (tq.oldestWaitingSince ?? '~')
          : tq.id;
  return list.sort((a, b) => {
    const [x, y] = [value(a), value(b)];
    const order = x < y ? -1 : x > y ? 1 : a.id - b.id;
    return descending && x !== y ? -order : order;
  });
}

export function taskQueueRoutes(deps: RouteDeps): Route[] {
  const changed = async (ids: readonly number[]) => deps.cluster.taskQueuesChanged(ids);

  /** A store change of one TQ the caller administers, then every replica re-reads it. */
  const changeTaskQueue =
    <S extends z.ZodType>(
      bodySchema: S | null,
      message: string,
      apply: (id: number, body: z.output<S>, change: AdminChange) => Promise<TaskQueueChangeResult | null>,
    ): Route['handler'] =>
    async ({ req, params, principal, logger }) => {
      const caller = principal as Principal;
      const tq = await loadTaskQueue(deps, caller, params.id);
      const body = (bodySchema ? parseOrThrow(bodySchema, await readJsonBody(req, 64 * 1024)) : {}) as z.output<S>;
      const result = await apply(tq.id, body, { at: isoNow(deps.clock), by: caller.subject });
      // Gone between the check and the change (a TQ is never deleted today, but the store may say so).
      if (!result) throw new PilothouseError('TASK_QUEUE_NOT_FOUND', `no task queue ${tq.id}`);
      await changed([tq.id]);
      logger.info({ taskQueueId: tq.id, jobs: result.jobs, changed: result.changed, ...(body as object) }, message);
      return { status: 200, json: result };
    };

  return [
    {
      method: 'GET',
      path: '/api/task-queues',
      policy: 'jobAdmin',
      summary:
        'task queues with waiting jobs (of the caller VO unless service administrator), filtered by vo, group, owner, jobType, paused; sorted by waiting, oldest, boost or id (- for descending)',
      docs: { query: listQuerySchema },
      async handler({ principal, query }) {
        const caller = principal as Principal;
        const filter = parseOrThrow(listQuerySchema, Object.fromEntries(query), 'BAD_QUERY');
        if (filter.vo !== undefined && !isJobAdministratorFor(caller, filter.vo)) {
          throw new PilothouseError('FORBIDDEN', `you do not administer jobs of VO ${filter.vo}`, { field: 'vo' });
        }
        const vo = filter.vo ?? (isAdministrator(caller) ? undefined : caller.vo);
        const selected = (await deps.store.listTaskQueues(vo === undefined ? {} : { vo })).filter(
          (tq) =>
            (filter.group === undefined || tq.group === filter.group) &&
            (filter.owner === undefined || tq.owner === filter.owner) &&
            (filter.jobType === undefined || tq.requirements.jobType === filter.jobType) &&
            (filter.paused === undefined || (tq.paused !== null) === (filter.paused === 'true')),
        );
        const oldest = await deps.store.queueAdmin.oldestWaitingJobs(selected.map((tq) => tq.id));
        const withAge = selected.map((tq) => ({ ...tq, oldestWaitingSince: oldest.get(tq.id) ?? null }));
        const sorted = sortTaskQueues(withAge, filter.sort);
        return {
          status: 200,
          json: { total: sorted.length, taskQueues: sorted.slice(0, filter.limit) },
        };
      },
    },
    {
      method: 'GET',
      path: '/api/task-queues/:id',
      policy: 'jobAdmin',
      summary:
        'one task queue: requirements, waiting jobs, its share and where it stands now, the running jobs of its owner and group, the idle pilots that could take it, and why nothing takes it',
      async handler({ params, principal }) {
        const tq = await loadTaskQueue(deps, principal as Principal, params.id);
        return { status: 200, json: await describeTaskQueue(deps, tq) };
      },
    },
    {
      method: 'POST',
      path: '/api/task-queues/:id/pause',
      policy: 'jobAdmin',
      summary: 'pause a task queue: matching skips it, its jobs stay Waiting with a minor status that says why',
      docs: { body: pauseSchema },
      handler: changeTaskQueue(pauseSchema, 'task queue paused', (id, body, change) =>
        deps.store.queueAdmin.setTaskQueuePaused(id, body, change),
      ),
    },
    {
      method: 'POST',
      path: '/api/task-queues/:id/resume',
      policy: 'jobAdmin',
      summary: 'resume a paused task queue: its jobs are matched again, in the order they had',
      docs: { body: 'none' },
      handler: changeTaskQueue(null, 'task queue resumed', (id, _body, change) =>
        deps.store.queueAdmin.setTaskQueuePaused(id, null, change),
      ),
    },
    {
      method: 'POST',
      path: '/api/task-queues/:id/boost',
      policy: 'jobAdmin',
      summary: `set a task queue's boost (-${MAX_BOOST}..${MAX_BOOST}; 0 = none): the highest boost among fitting task queues is served first`,
      docs: { body: boostSchema },
      handler: changeTaskQueue(boostSchema, 'task queue boosted', (id, body, change) =>
        deps.store.queueAdmin.setTaskQueueBoost(id, body.boost, change),
      ),
    },
    {
      method: 'POST',
      path: '/api/task-queues/boost',
      policy: 'jobAdmin',
      summary: "boost every task queue of one owner that has waiting jobs (in the caller's VO unless vo is given)",
      docs: { body: ownerBoostSchema },
      async handler({ req, principal, logger }) {
        const caller = principal as Principal;
        const body = parseOrThrow(ownerBoostSchema, await readJsonBody(req, 64 * 1024));
        const vo = body.vo ?? caller.vo;
        if (!isJobAdministratorFor(caller, vo)) {
          throw new PilothouseError('FORBIDDEN', `you do not administer jobs of VO ${vo}`, { field: 'vo' });
        }
        const change = { at: isoNow(deps.clock), by: caller.subject };
        const results = [];
        for (const tq of await deps.store.listTaskQueues({ vo })) {
          if (tq.owner !== body.owner) continue;
          const result = await deps.store.queueAdmin.setTaskQueueBoost(tq.id, body.boost, change);
          if (result) results.push({ taskQueueId: tq.id, changed: result.changed, jobs: result.jobs });
        }
        await changed(results.map((r) => r.taskQueueId));
        logger.info({ owner: body.owner, vo, boost: body.boost, taskQueues: results.length }, 'owner boosted');
        return { status: 200, json: { owner: body.owner, vo, boost: body.boost, taskQueues: results } };
      },
    },
    ...(['kill', 'reschedule'] as const).map((operation): Route => ({
      method: 'POST',
      path: `/api/task-queues/:id/${operation}`,
      policy: 'jobAdmin',
      summary:
        operation === 'kill'
          ? 'kill every job of a task queue that has not ended, with a count of what changed'
          : 'reschedule every job of a task queue that a pilot holds, with a count of what changed',
      docs: { body: 'none' },
      async handler({ params, principal, logger }) {
        const caller = principal as Principal;
        const tq = await loadTaskQueue(deps, caller, params.id);
        const counts = await applyToTaskQueueJobs(deps, caller, tq.id, operation, logger);
        logger.info({ taskQueueId: tq.id, operation, ...counts }, 'task queue jobs changed');
        return { status: 200, json: { taskQueueId: tq.id, operation, ...counts } };
      },
    })),
  ];
}
