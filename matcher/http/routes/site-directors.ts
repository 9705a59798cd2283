/**
 * What site directors need from the matcher besides pilot records: the demand of their queues (one
 * call per cycle for every queue), the pilot bundle their wrappers download, and a place to leave
 * each cycle's decisions for `pilothouse site-director status`.
 */
import { PilothouseError } from '../../../shared/errors.ts';
import { isoNow } from '../../../shared/clock.ts';
import { parseOrThrow } from '../../../shared/validation.ts';
import {
  demandRequestSchema,
  directorReportSchema,
  type DemandAnswer,
} from '../../../shared/protocol/site-director.ts';
import { queueKeyOf } from '../../store/pilot-store.ts';
import { readJsonBody, type Route } from '../router.ts';
import type { RouteDeps } from './context.ts';

export function siteDirectorRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/queues/demand',
      policy: 'serviceAdmin',
      summary:
        'for each queue (slot, VO): waiting jobs that fit a pilot of it, pilots that would take them, pilots already there',
      docs: { body: demandRequestSchema },
      async handler({ req }) {
        const body = parseOrThrow(demandRequestSchema, await readJsonBody(req, 32 * 1024 * 1024));
        const counts = await deps.pilots.countActive(body.queues);
        const queues: DemandAnswer[] = body.queues.map((queue) => ({
          key: queue.key,
          ...deps.matchService.demand(queue),
          pilots: counts.get(queueKeyOf(queue)) ?? { waiting: 0, running: 0, unknown: 0 },
        }));
        return { status: 200, json: { at: isoNow(deps.clock), queues } };
      },
    },
    {
      method: 'PUT',
      path: '/api/site-directors/:name',
      policy: 'serviceAdmin',
      summary: "a site director's last cycle: per queue the demand, pilots, caps, throttles and what it submitted",
      docs: { body: directorReportSchema },
      async handler({ req, params }) {
        const report = parseOrThrow(directorReportSchema, await readJsonBody(req, 32 * 1024 * 1024));
        if (report.director !== params.name) {
          throw new PilothouseError(
            'VALIDATION_FAILED',
            `director: the report names ${report.director}, not ${params.name}`,
            {
              field: 'director',
            },
          );
        }
        await deps.pilots.saveDirectorReport(report, isoNow(deps.clock));
        return { status: 200, json: { director: report.director, cycle: report.cycle } };
      },
    },
    {
      method: 'GET',
      path: '/api/site-directors',
      policy: 'jobAdmin',
      summary: 'every site director that reported, with its last cycle',
      handler: async () => ({ status: 200, json: { directors: await deps.pilots.directorReports() } }),
    },
    {
      method: 'GET',
      path: '/api/site-directors/:name',
      policy: 'jobAdmin',
      summary: "one site director's last cycle",
      async handler({ params }) {
        const found = (await deps.pilots.directorReports()).find((entry) => entry.report.director === params.name);
        if (!found)
          throw new PilothouseError('DIRECTOR_NOT_FOUND', `no site director ${params.name ?? ''} has reported`);
        return { status: 200, json: found };
      },
    },
    {
      method: 'GET',
      path: '/api/pilot-bundle/info',
      policy: 'public',
      summary: 'the pilot bundle wrappers download: its sha256 and size',
      async handler() {
        const info = await deps.pilotBundle.info();
        return { status: 200, json: { sha256: info.sha256, sizeBytes: info.sizeBytes } };
      },
    },
    {
      method: 'GET',
      path: '/api/pilot-bundle',
      policy: 'public',
      summary: 'dist/pilot.mjs, the one-file pilot (x-pilothouse-sha256 names its digest)',
      async handler() {
        const { info, stream } = await deps.pilotBundle.open();
        return {
          status: 200,
          stream,
          headers: {
            'content-type': 'text/javascript; charset=utf-8',
            'content-length': String(info.sizeBytes),
            'x-pilothouse-sha256': info.sha256,
            etag: `"${info.sha256}"`,
            'cache-control': 'no-cache',
          },
        };
      },
    },
  ];
}
