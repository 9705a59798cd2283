/**
 * Recurring jobs: `POST /api/schedules` (JSON: the schedule's fields and `job`; or a JDL body with the
 * fields in the query string), `GET /api/schedules[/{id}]`, pause, resume, delete, and the runs of a
 * schedule. A schedule is seen and steered by whoever would see its jobs (owner, group with job
 * sharing, job administrators of its VO).
 */
import { z } from 'zod';
import type { Principal } from '../../../shared/auth/claims.ts';
import { PilothouseError } from '../../../shared/errors.ts';
import { isoNow } from '../../../shared/clock.ts';
import { jobDescriptionSchema, parseJobDescriptions, type JobDescription } from '../../../shared/job/description.ts';
import { scheduleFieldsSchema, type ScheduleFields, type ScheduleView } from '../../../shared/schedule/schedule.ts';
import { parseOrThrow } from '../../../shared/validation.ts';
import { canSeeJob } from '../../auth/policy.ts';
import { CronPlan } from '../../schedules/cron-plan.ts';
import { isJsonBody, readJsonBody, readTextBody, type Route } from '../router.ts';
import { parseId, queryInt, type RouteDeps } from './context.ts';
import { visibleSelection } from './job-search-query.ts';
import { assertInputSandboxesUploaded, descriptionsOfJdl, JDL_CONTENT, jdlEnvelopeSchema } from './jobs.ts';

/** Fire times shown on creation, so that a user sees at once what the expression means. */
const SHOWN_FIRE_TIMES = 5;
const LIST_LIMIT = 1_000;
const RUNS_LIMIT_DEFAULT = 100;
const RUNS_LIMIT_MAX = 10_000;

const scheduleBodySchema = scheduleFieldsSchema.extend({
  job: z.union([jobDescriptionSchema, z.array(jobDescriptionSchema).min(1), jdlEnvelopeSchema]),
});

/** Query-string fields of a JDL body: all text, numbers converted. */
const scheduleQuerySchema = scheduleFieldsSchema.extend({
  maxRuns: z.coerce.number().pipe(z.int().min(1).max(1_000_000_000)).optional(),
});

export function scheduleRoutes(deps: RouteDeps): Route[] {
  const load = async (principal: Principal, rawId: string | undefined): Promise<ScheduleView> => {
    const id = parseId(rawId, 'id');
    const schedule = await deps.store.schedules.getSchedule(id);
    if (!schedule || !canSeeJob(principal, schedule)) {
      throw new PilothouseError('SCHEDULE_NOT_FOUND', `schedule ${id} does not exist`, { scheduleId: id });
    }
    return schedule;
  };
  const withFireTimes = (schedule: ScheduleView) => ({
    ...schedule,
    nextFireTimes:
      schedule.state === 'active' && schedule.nextFireAt !== null
        ? [
            schedule.nextFireAt,
            ...CronPlan.compile(schedule)
              .nextSlots(Date.parse(schedule.nextFireAt), SHOWN_FIRE_TIMES - 1)
              .map((ms) => new Date(ms).toISOString()),
          ]
        : [],
  });

  /** Pause keeps the next slot to show; resume fires from the first slot after now. */
  const pauseRoute = (action: 'pause' | 'resume', summary: string): Route => ({
    method: 'POST',
    path: `/api/schedules/:id/${action}`,
    policy: 'user',
    summary,
    docs: { body: 'none' },
    async handler({ params, principal, logger }) {
      const schedule = await load(principal as Principal, params.id);
      const next = action === 'pause' ? null : CronPlan.compile(schedule).nextAfter(deps.clock.nowMs());
      const changed = await deps.store.schedules.setSchedulePaused(schedule.id, action === 'pause', {
        at: isoNow(deps.clock),
        by: (principal as Principal).subject,
        nextFireAt: action === 'pause' ? schedule.nextFireAt : next === null ? null : new Date(next).toISOString(),
      });
      if (action === 'resume') deps.schedules.poke();
      logger.info({ scheduleId: schedule.id, action }, 'schedule paused or resumed');
      return { status: 200, json: withFireTimes(changed as ScheduleView) };
    },
  });

  return [
    {
      method: 'POST',
      path: '/api/schedules',
      policy: 'submitter',
      summary:
        'create a recurring schedule: {cron, timeZone?, overlap?, catchUp?, startAt?, endAt?, maxRuns?, name?, job} (JSON), or a JDL body with the fields in the query string',
      docs: {
        body: scheduleBodySchema,
        otherBodies: [
          {
            contentType: 'text/x-jdl',
            description: 'the job as a DIRAC JDL; cron, timeZone, overlap... in the query string',
          },
        ],
        answer: { status: 201, description: 'the schedule, with its next five fire times' },
      },
      async handler({ req, query, principal, logger }) {
        const caller = principal as Principal;
        const { fields, descriptions } = await readScheduleRequest(deps, req, query);
        await assertInputSandboxesUploaded(deps, caller, descriptions, 'job');
        const nowMs = deps.clock.nowMs();
        const plan = CronPlan.compile(fields);
        const gapMs = plan.shortestGapMs(Math.max(nowMs, fields.startAt ? Date.parse(fields.startAt) - 1 : nowMs));
        const minMs = deps.schedules.minIntervalSec * 1000;
        if (gapMs !== null && gapMs < minMs) {
          throw new PilothouseError(
            'SCHEDULE_TOO_FREQUENT',
            `cron: ${JSON.stringify(fields.cron)} fires every ${gapMs / 1000} s at times; this matcher allows one run per ${deps.schedules.minIntervalSec} s at most (server --schedule-min-interval-sec)`,
            { field: 'cron' },
          );
        }
        const first = plan.nextAfter(nowMs);
        const at = isoNow(deps.clock);
        const schedule = await deps.store.schedules.createSchedule({
          ownership: { vo: caller.vo, group: caller.group, owner: caller.subject },
          name: fields.name ?? null,
          cron: fields.cron.trim().split(/\s+/).join(' '),
          timeZone: fields.timeZone,
          overlap: fields.overlap,
          catchUp: fields.catchUp,
          startAt: fields.startAt ?? null,
          endAt: fields.endAt ?? null,
          maxRuns: fields.maxRuns ?? null,
          jobs: descriptions,
          nextFireAt: first === null ? null : new Date(first).toISOString(),
          at,
          by: caller.subject,
        });
        deps.schedules.poke();
        logger.info({ scheduleId: schedule.id, cron: schedule.cron, owner: caller.subject }, 'schedule created');
        return { status: 201, json: withFireTimes(schedule) };
      },
    },
    {
      method: 'GET',
      path: '/api/schedules',
      policy: 'user',
      summary: 'the schedules you may see, newest first',
      async handler({ principal }) {
        // Whose schedules: those whose jobs a search would show the caller.
        const visible = visibleSelection(principal as Principal, {});
        const selection = { vo: visible.vos?.[0], group: visible.groups?.[0], owner: visible.owners?.[0] };
        const schedules = await deps.store.schedules.listSchedules(selection, LIST_LIMIT);
        return { status: 200, json: { schedules: schedules.map(withFireTimes) } };
      },
    },
    {
      method: 'GET',
      path: '/api/schedules/:id',
      policy: 'user',
      summary: 'a schedule, with its next five fire times',
      async handler({ params, principal }) {
        return { status: 200, json: withFireTimes(await load(principal as Principal, params.id)) };
      },
    },
    {
      method: 'GET',
      path: '/api/schedules/:id/runs',
      policy: 'user',
      summary: "what each slot became, newest first: the run's jobs and their status, or why it was skipped or missed",
      async handler({ params, query, principal }) {
        const schedule = await load(principal as Principal, params.id);
        const limit = queryInt(query, 'limit', RUNS_LIMIT_DEFAULT, 1, RUNS_LIMIT_MAX);
        return { status: 200, json: { runs: await deps.store.schedules.scheduleRuns(schedule.id, limit) } };
      },
    },
    pauseRoute('pause', 'stop firing (slots while paused are not caught up)'),
    pauseRoute('resume', 'fire again, from the first slot after now'),
    {
      method: 'DELETE',
      path: '/api/schedules/:id',
      policy: 'user',
      summary: 'delete a schedule and the record of its runs (its jobs stay, with its id)',
      async handler({ params, principal, logger }) {
        const schedule = await load(principal as Principal, params.id);
        await deps.store.schedules.deleteSchedule(schedule.id);
        logger.info({ scheduleId: schedule.id }, 'schedule deleted');
        return { status: 200, json: { scheduleId: schedule.id, deleted: true } };
      },
    },
  ];
}

async function readScheduleRequest(
  deps: RouteDeps,
  req: Parameters<Route['handler']>[0]['req'],
  query: URLSearchParams,
): Promise<{ fields: ScheduleFields; descriptions: JobDescription[] }> {
  const contentType = req.headers['content-type'] ?? '';
  if (JDL_CONTENT.test(contentType)) {
    const fields = parseOrThrow(scheduleQuerySchema, Object.fromEntries(query.entries()));
    const text = await readTextBody(req, deps.limits.maxSubmitBytes);
    return { fields, descriptions: descriptionsOfJdl(text, deps.limits.maxJobsPerSubmission).descriptions };
  }
  if (!isJsonBody(req)) {
    throw new PilothouseError('UNSUPPORTED_MEDIA_TYPE', 'schedules are created with application/json or text/x-jdl');
  }
  const body = await readJsonBody(req, deps.limits.maxSubmitBytes);
  const raw = body !== null && typeof body === 'object' ? (body as Record<string, unknown>) : {};
  // The job is checked as a submission would be (its own error names its field), the rest here.
  const { job, ...rest } = raw;
  const fields = parseOrThrow(scheduleFieldsSchema, rest);
  if (job === undefined) throw new PilothouseError('VALIDATION_FAILED', 'job: required', { field: 'job' });
  const envelope = jdlEnvelopeSchema.safeParse(job);
  const descriptions = envelope.success
    ? jdlAt('job.jdl', () =>
        descriptionsOfJdl(envelope.data.jdl, deps.limits.maxJobsPerSubmission, envelope.data.inputSandbox),
      )
    : parseJobDescriptionsAt(job, deps.limits.maxJobsPerSubmission);
  return { fields, descriptions };
}

/** A JDL's errors name where it was (`job.jdl`) when they name no attribute of it. */
function jdlAt(field: string, parse: () => { descriptions: JobDescription[] }): JobDescription[] {
  try {
    return parse().descriptions;
  } catch (error) {
    if (error instanceof PilothouseError && error.code === 'JDL_INVALID' && error.details.field === undefined) {
      throw new PilothouseError('JDL_INVALID', error.message, { ...error.details, field });
    }
    throw error;
  }
}

/** A description or an array of them, each error's field under `job`. */
function parseJobDescriptionsAt(raw: unknown, maxJobs: number): JobDescription[] {
  try {
    return parseJobDescriptions(raw, { maxJobs });
  } catch (error) {
    if (error instanceof PilothouseError && error.code === 'VALIDATION_FAILED') {
      const field = typeof error.details?.field === 'string' ? error.details.field : '';
      const named = field === '' ? 'job' : field.startsWith('[') ? `job${field}` : `job.${field}`;
      throw new PilothouseError('VALIDATION_FAILED', `job: ${error.message}`, { field: named });
    }
    throw error;
  }
}
