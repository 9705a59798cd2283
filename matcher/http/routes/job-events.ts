/**
 * `GET /api/events`: the jobs the caller may see, as they change, in server-sent events, so that a
 * monitor updates without anyone pressing refresh. Each connection reads from the store, every
 * second, the visible jobs whose last update is past its cursor: every replica sees every change,
 * whichever replica made it, and a user only ever receives jobs a search would show them.
 * A job's last update is the time its report carries (the pilot's clock), and reports are committed
 * in an order that need not be theirs: each read therefore goes back LAG_WINDOW_MS before the cursor
 * and leaves out what this connection already sent. A change stamped more than that before the
 * newest one seen is missed (a worker node whose clock is that far behind); a server-assigned change
 * sequence would close this. A reconnecting client sends `Last-Event-ID` (the cursor's time).
 *   event: jobs   data: {"jobs": [{"id", "status", "minorStatus", "applicationStatus", "site", "lastUpdateAt"}]}
 */
import { PassThrough } from 'node:stream';
import type { Principal } from '../../../shared/auth/claims.ts';
import type { JobView } from '../../../shared/job/model.ts';
import { PilothouseError, toPilothouseError } from '../../../shared/errors.ts';
import { isoNow } from '../../../shared/clock.ts';
import type { Route } from '../router.ts';
import type { RouteDeps } from './context.ts';
import { visibleSelection } from './job-search-query.ts';

/** How often each connection looks for changes. */
export const EVENT_POLL_INTERVAL_MS = 1_000;
/** How far before the cursor each read goes back, for reports committed out of their time order. */
export const LAG_WINDOW_MS = 30_000;
/** Jobs per store read, and reads per poll at most (a flood is sent over the next polls). */
const JOBS_PER_READ = 500;
const READS_PER_POLL = 4;
/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;

function cursorOf(lastEventId: string | undefined, since: string | null, now: string): string {
  if (lastEventId && !Number.isNaN(Date.parse(lastEventId))) return new Date(lastEventId).toISOString();
  if (since !== null) {
    if (Number.isNaN(Date.parse(since))) {
      throw new PilothouseError('BAD_QUERY', 'since must be an ISO-8601 time', { field: 'since' });
    }
    return new Date(since).toISOString();
  }
  return now;
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
        /** What this connection sent within the window: `id@lastUpdateAt`. */
        const sent = new Map<string, string>();
        const read = async (): Promise<void> => {
          if (closed) return;
          try {
            const windowStart = new Date(Date.parse(cursor) - LAG_WINDOW_MS).toISOString();
            for (const [key, at] of sent) if (at < windowStart) sent.delete(key);
            const fresh: JobView[] = [];
            let after: [string, number] | undefined;
            for (let reads = 0; reads < READS_PER_POLL; reads += 1) {
              const page = await deps.store.searchJobs({
                ...visibleSelection(caller, {
                  filters: [{ column: 'lastUpdateAt', operator: 'gte', value: windowStart }],
                }),
                sort: [{ column: 'lastUpdateAt', direction: 'asc' }],
                page: 1,
                perPage: JOBS_PER_READ,
                countTotal: false,
                ...(after && { after }),
              });
              for (const job of page.jobs) {
                const key = `${job.id}@${job.lastUpdateAt}`;
                if (sent.has(key)) continue;
                sent.set(key, job.lastUpdateAt);
                fresh.push(job);
              }
              const last = page.jobs.at(-1);
              if (!last || page.jobs.length < JOBS_PER_READ) break;
              after = [last.lastUpdateAt, last.id];
            }
            if (fresh.length > 0 && !closed) {
              for (const job of fresh) if (job.lastUpdateAt > cursor) cursor = job.lastUpdateAt;
              const jobs = fresh.map((job) => ({
                id: job.id,
                status: job.status,
                minorStatus: job.minorStatus,
                applicationStatus: job.applicationStatus,
                site: job.site,
                lastUpdateAt: job.lastUpdateAt,
              }));
              stream.write(`id: ${cursor}\nevent: jobs\ndata: ${JSON.stringify({ jobs })}\n\n`);
            }
          } catch (error) {
            const coded = toPilothouseError(error);
            logger.warn({ code: coded.code, err: coded.message }, 'job event read failed');
            if (!closed) stream.write(`event: error\ndata: ${JSON.stringify({ code: coded.code })}\n\n`);
          }
          if (!closed) timer = setTimeout(() => void read(), EVENT_POLL_INTERVAL_MS);
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
