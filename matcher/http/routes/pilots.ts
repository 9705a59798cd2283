/**
 * Pilot operations for administrators: read a pilot's shipped log, drain a pilot (it stops taking work
 * and leaves once its jobs end), and a job's latest resource use as its pilot's heartbeats reported it.
 * A job administrator acts on the pilots of their VO; a service administrator on every pilot.
 */
import { z } from 'zod';
import { PilothouseError } from '../../../shared/errors.ts';
import { isoNow } from '../../../shared/clock.ts';
import { FINAL_PILOT_STATUSES } from '../../../shared/pilot/status.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import { readJsonBody, type Route } from '../router.ts';
import { queryInt, type RouteDeps } from './context.ts';
import { loadVisibleJob } from './jobs.ts';
import { loadVisiblePilot } from './pilot-records.ts';

export const MAX_LOG_PAGE_LINES = 5_000;
const DEFAULT_LOG_PAGE_LINES = 1_000;

const drainBodySchema = z.strictObject({ reason: z.string().min(1).max(512).optional() });

export function pilotRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/pilots/:id/logs',
      policy: 'jobAdmin',
      summary: "a pilot's own structured log as it shipped it (?after=SEQ&limit=N, oldest first)",
      async handler({ params, query, principal }) {
        const pilot = await loadVisiblePilot(deps, principal as Principal, params.id);
        const afterSeq = queryInt(query, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
        const limit = queryInt(query, 'limit', DEFAULT_LOG_PAGE_LINES, 1, MAX_LOG_PAGE_LINES);
        const [page, activity] = await Promise.all([
          deps.pilotActivity.readLogs(pilot.id, { afterSeq, limit }),
          deps.pilotActivity.getActivity(pilot.id),
        ]);
        return {
          status: 200,
          json: {
            pilotId: pilot.id,
            status: pilot.status,
            lines: page.lines,
            nextAfter: page.nextAfterSeq,
            totalLines: activity.logLines,
            droppedLines: activity.droppedLogLines,
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/api/pilots/:id/drain',
      policy: 'jobAdmin',
      summary: 'drain a pilot: it takes no more work and exits once its running jobs end',
      docs: { body: drainBodySchema },
      async handler({ req, params, principal, logger }) {
        const caller = principal as Principal;
        const pilot = await loadVisiblePilot(deps, caller, params.id);
        const raw = Number(req.headers['content-length'] ?? 0) > 0 ? await readJsonBody(req, 4096) : {};
        const parsed = drainBodySchema.safeParse(raw ?? {});
        if (!parsed.success) {
          throw new PilothouseError('VALIDATION_FAILED', `reason: ${parsed.error.issues[0]?.message ?? 'invalid'}`, {
            field: 'reason',
          });
        }
        const reason = parsed.data.reason ?? `drained by ${caller.subject}`;
        const requestedAt = isoNow(deps.clock);
        const ended = FINAL_PILOT_STATUSES.has(pilot.status);
        if (!ended)
          await deps.pilotActivity.requestDrain(pilot.id, { requestedAt, requestedBy: caller.subject, reason });
        const delivered = !ended && deps.cluster.drainRequested(pilot.id, reason);
        logger.info({ pilotId: pilot.id, delivered, ended }, 'pilot drain requested');
        return {
          status: 200,
          json: {
            pilotId: pilot.id,
            status: pilot.status,
            draining: !ended,
            delivered,
            requestedAt: ended ? null : requestedAt,
            reason,
          },
        };
      },
    },
    {
      method: 'GET',
      path: '/api/jobs/:id/usage',
      policy: 'user',
      summary:
        "a job's latest resource use from its pilot's heartbeats (CPU, RSS and peak, wall clock, disk, node load)",
      async handler({ params, principal }) {
        const job = await loadVisibleJob(deps, principal as Principal, params.id);
        const usage = await deps.pilotActivity.getJobUsage(job.id);
        return {
          status: 200,
          json: { jobId: job.id, attempt: job.attempt, usage: usage?.attempt === job.attempt ? usage : null },
        };
      },
    },
  ];
}
