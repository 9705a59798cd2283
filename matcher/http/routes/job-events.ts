/**
 * `GET /api/events`: the jobs the caller may see, as they change, in server-sent events, so that a
 * monitor updates without anyone pressing refresh. Each connection keeps a cursor on the jobs' last
 * update (time, then id) and reads what moved past it from the store every second (at once again
 * when a read was full): every replica sees every change, whichever replica made it, and a user only
 * ever receives jobs a search would show them. A reconnecting client sends `Last-Event-ID` and
 * misses nothing.
 *   event: jobs   data: {"jobs": [{"id", "status", "minorStatus", "applicationStatus", "site", "lastUpdateAt"}]}
 */
import { PassThrough } from 'node:stream';
import type { Principal } from '../../../shared/auth/claims.ts';
import { PilothouseError, toPilothouseError } from '../../../shared/errors.ts';
import { isoNow } from '../../../shared/clock.ts';
import type { Route } from '../router.ts';
import type { RouteDeps } from './context.ts';
import { visibleSelection } from './job-search-query.ts';

/** How often each connection looks for changes. */
export const EVENT_POLL_INTERVAL_MS = 1_000;
/** Jobs in one event at most; a fuller backlog follows at once in the next ones. */
const MAX_JOBS_PER_EVENT = 500;
/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;

type Cursor = [string, number];

function cursorOf(lastEventId: string | undefined, since: string | null, now: string): Cursor {
  const match = lastEventId ? /^(\d{4}-\d\d-\d\dT[\d:.]+Z)\|(\d+)$/.exec(lastEventId) : null;
  if (match) return [match[1] as string, Number(match[2])];
  if (since !== null) {
    if (Number.isNaN(Date.parse(since))) {
      throw new PilothouseError('BAD_QUERY', 'since must be an ISO-8601 time', { field: 'since' });
    }
    return [new Date(since).toISOString(), 0];
  }
  return [now, 0];
}

export function jobEventRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/events',
      policy: 'user',
      summary:
        'server-sent events: the jobs you may see, as they change (from ?since=ISO or Last-Event-ID, else from now)',
      docs: { answer: { status: 200, description: 'an event stream', contentType: 'text/event-stream' } },
      async handler({ req, query, principal, logger }) {
        const caller = principal as Principal;
        let cursor = cursorOf(
          req.headers['last-event-id'] as string | undefined,
          query.get('since'),
          isoNow(deps.clock),
        );
        const stream = new PassThrough();
        let closed = false;
        let timer: NodeJS.Timeout | undefined;
        const keepalive = setInterval(() => stream.write(': keepalive\n\n'), KEEPALIVE_MS);
        const close = () => {
          closed = true;
          clearTimeout(timer);
          clearInterval(keepalive);
          stream.end();
        };
        req.once('close', close);
        const read = async (): Promise<void> => {
          if (closed) return;
          let full = false;
          try {
            const page = await deps.store.searchJobs({
              ...visibleSelection(caller, {
                filters: [{ column: 'lastUpdateAt', operator: 'gte', value: cursor[0] }],
              }),
              sort: [{ column: 'lastUpdateAt', direction: 'asc' }],
              page: 1,
              perPage: MAX_JOBS_PER_EVENT,
              countTotal: false,
              after: cursor,
            });
            const last = page.jobs.at(-1);
            if (last && !closed) {
              cursor = [last.lastUpdateAt, last.id];
              const jobs = page.jobs.map((job) => ({
                id: job.id,
                status: job.status,
                minorStatus: job.minorStatus,
                applicationStatus: job.applicationStatus,
                site: job.site,
                lastUpdateAt: job.lastUpdateAt,
              }));
              stream.write(`id: ${cursor[0]}|${cursor[1]}\nevent: jobs\ndata: ${JSON.stringify({ jobs })}\n\n`);
              full = page.jobs.length === MAX_JOBS_PER_EVENT;
            }
          } catch (error) {
            const coded = toPilothouseError(error);
            logger.warn({ code: coded.code, err: coded.message }, 'job event read failed');
            if (!closed) stream.write(`event: error\ndata: ${JSON.stringify({ code: coded.code })}\n\n`);
          }
          if (!closed) timer = setTimeout(() => void read(), full ? 0 : EVENT_POLL_INTERVAL_MS);
        };
        stream.write('retry: 3000\n\n');
        void read();
        return {
          status: 200,
          stream,
          headers: {
            'content-type': 'text/event-stream; charset=utf-8',
            'cache-control': 'no-store',
            'x-accel-buffering': 'no',
          },
        };
      },
    },
  ];
}
