/**
 * Pilot records over REST: site directors register the pilots they submit and report what the batch
 * systems say about them (service administrators); job administrators list and read them, with their
 * status history, the jobs they ran, and the wrapper's output fetched from the CE.
 */
import { z } from 'zod';
import { PilothouseError } from '../../../shared/errors.ts';
import { isoNow } from '../../../shared/clock.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import { PILOT_STATUSES, type PilotStatus } from '../../../shared/pilot/status.ts';
import { parseOrThrow } from '../../../shared/validation.ts';
import {
  NAME_PATTERN,
  pilotOutputSchema,
  pilotStatusUpdatesSchema,
  registerPilotsSchema,
} from '../../../shared/protocol/site-director.ts';
import { isAdministrator } from '../../auth/policy.ts';
import { SORTABLE_PILOT_FIELDS, type PilotQuery, type PilotRecord } from '../../store/pilot-store.ts';
import { contentRange, readJsonBody, type Route } from '../router.ts';
import type { RouteDeps } from './context.ts';

export const MAX_PILOTS_PER_PAGE = 1000;
/** Jobs listed with a pilot: the first ones it ran (its job count is in the record). */
const JOBS_LISTED_PER_PILOT = 100;

/** The pilot, if the caller may see it (pilots of other VOs are simply not found). */
export async function loadVisiblePilot(
  deps: RouteDeps,
  principal: Principal,
  id: string | undefined,
): Promise<PilotRecord> {
  const pilot = await deps.pilots.getPilot(id ?? '');
  if (!pilot || (!isAdministrator(principal) && pilot.vo !== principal.vo)) {
    throw new PilothouseError('PILOT_NOT_FOUND', `no pilot ${id ?? ''}`, { pilotId: id });
  }
  return pilot;
}

const listField = <T extends z.ZodType<string, string>>(item: T) =>
  z
    .string()
    .transform((raw) => raw.split(',').filter((part) => part !== ''))
    .pipe(z.array(item).max(100));
const nameList = listField(z.string().regex(NAME_PATTERN, 'not a valid name'));

const listQuerySchema = z.strictObject({
  id: listField(z.string().min(1).max(64)).optional(),
  vo: nameList.optional(),
  site: nameList.optional(),
  ce: nameList.optional(),
  queue: nameList.optional(),
  status: listField(z.enum(PILOT_STATUSES)).optional(),
  director: nameList.optional(),
  tracked: z.enum(['true', 'false']).optional(),
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
  sort: z.enum(SORTABLE_PILOT_FIELDS).default('createdAt'),
  order: z.enum(['asc', 'desc']).default('desc'),
  page: z.coerce.number().int().min(1).default(1),
  perPage: z.coerce.number().int().min(1).max(MAX_PILOTS_PER_PAGE).default(100),
});

export function pilotRecordRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/pilots',
      policy: 'serviceAdmin',
      summary:
        'register pilots a site director just submitted ({director, pilots: [{stamp, vo, site, ce, queue, backend, backendRef, submittedAt}]})',
      docs: { body: registerPilotsSchema },
      async handler({ req, logger }) {
        const body = parseOrThrow(registerPilotsSchema, await readJsonBody(req, 4 * 1024 * 1024));
        const outcome = await deps.pilots.registerPilots(body.director, body.pilots, isoNow(deps.clock));
        if (outcome.conflicts.length > 0) {
          logger.warn(
            { director: body.director, conflicts: outcome.conflicts.slice(0, 20) },
            'pilot stamps in conflict',
          );
          throw new PilothouseError(
            'PILOT_CONFLICT',
            `${outcome.conflicts.length} stamp(s) already belong to other pilots: ${outcome.conflicts.slice(0, 5).join(', ')}`,
            { stamps: outcome.conflicts, registered: outcome.registered },
          );
        }
        return { status: 201, json: outcome };
      },
    },
    {
      method: 'POST',
      path: '/api/pilots/status',
      policy: 'serviceAdmin',
      summary:
        'what the batch systems say about pilots ({updates: [{stamp, status, reason, native, exitCode, at, untrack}]})',
      docs: { body: pilotStatusUpdatesSchema },
      async handler({ req }) {
        const body = parseOrThrow(pilotStatusUpdatesSchema, await readJsonBody(req, 4 * 1024 * 1024));
        return { status: 200, json: await deps.pilots.applyBackendUpdates(body.updates) };
      },
    },
    {
      method: 'GET',
      path: '/api/pilots',
      policy: 'jobAdmin',
      summary:
        'pilots, newest first (?vo=&site=&ce=&queue=&status=A,B&director=&tracked=&since=&until=&sort=&order=&page=&perPage=)',
      async handler({ query, principal }) {
        const caller = principal as Principal;
        const q = parseOrThrow(listQuerySchema, Object.fromEntries(query), 'BAD_QUERY');
        const pilotQuery: PilotQuery = {
          ...(q.id && { ids: q.id }),
          ...(q.vo && { vos: q.vo }),
          ...(q.site && { sites: q.site }),
          ...(q.ce && { ces: q.ce }),
          ...(q.queue && { queues: q.queue }),
          ...(q.status && { statuses: q.status as PilotStatus[] }),
          ...(q.director && { directors: q.director }),
          ...(q.tracked && { tracked: q.tracked === 'true' }),
          ...(q.since && { createdAfter: new Date(q.since).toISOString() }),
          ...(q.until && { createdBefore: new Date(q.until).toISOString() }),
          sort: { field: q.sort, direction: q.order },
          page: q.page,
          perPage: q.perPage,
        };
        // A job administrator sees the pilots of their own VO only, whatever the filter says.
        if (!isAdministrator(caller)) pilotQuery.vos = (q.vo ?? [caller.vo]).filter((vo) => vo === caller.vo);
        const page = await deps.pilots.searchPilots(pilotQuery);
        const headers = contentRange('pilots', q.page, q.perPage, page.pilots.length, page.total);
        return {
          status: 200,
          headers,
          json: { total: page.total, page: q.page, perPage: q.perPage, pilots: page.pilots },
        };
      },
    },
    {
      method: 'GET',
      path: '/api/pilots/:id',
      policy: 'jobAdmin',
      summary: 'a pilot: where it runs, its node, its status and their history, its jobs, drain/exit/heartbeat',
      async handler({ params, principal }) {
        const pilot = await loadVisiblePilot(deps, principal as Principal, params.id);
        const [history, activity, jobs] = await Promise.all([
          deps.pilots.getHistory(pilot.id),
          deps.pilotActivity.getActivity(pilot.id),
          deps.store.searchJobs({
            pilotIds: [pilot.id],
            sort: [{ column: 'id', direction: 'asc' }],
            page: 1,
            perPage: JOBS_LISTED_PER_PILOT,
          }),
        ]);
        return {
          status: 200,
          json: {
            ...pilot,
            ...activity,
            history,
            jobs: jobs.jobs.map((job) => ({
              id: job.id,
              attempt: job.attempt,
              name: job.name,
              status: job.status,
              minorStatus: job.minorStatus,
              owner: job.owner,
            })),
          },
        };
      },
    },
    {
      method: 'PUT',
      path: '/api/pilots/:id/output',
      policy: 'serviceAdmin',
      summary: "store the pilot wrapper's stdout/stderr as fetched from the CE ({stdout, stderr, truncated})",
      docs: { body: pilotOutputSchema },
      async handler({ req, params }) {
        const output = parseOrThrow(pilotOutputSchema, await readJsonBody(req, 4 * 1024 * 1024));
        const stored = await deps.pilots.storeOutput(params.id ?? '', output, isoNow(deps.clock));
        if (!stored) throw new PilothouseError('PILOT_NOT_FOUND', `no pilot ${params.id ?? ''}`);
        return { status: 200, json: { pilotId: params.id, stored: true } };
      },
    },
    {
      method: 'GET',
      path: '/api/pilots/:id/output',
      policy: 'jobAdmin',
      summary: "the pilot wrapper's stdout and stderr as its site director fetched them from the CE",
      async handler({ params, principal }) {
        const pilot = await loadVisiblePilot(deps, principal as Principal, params.id);
        const output = await deps.pilots.getOutput(pilot.id);
        if (!output) {
          throw new PilothouseError(
            'PILOT_NOT_FOUND',
            pilot.tracked
              ? `pilot ${pilot.id} has no output yet: its site director fetches it when the pilot ends`
              : `no output was fetched for pilot ${pilot.id}`,
            { pilotId: pilot.id },
          );
        }
        return { status: 200, json: { pilotId: pilot.id, status: pilot.status, ...output } };
      },
    },
  ];
}
