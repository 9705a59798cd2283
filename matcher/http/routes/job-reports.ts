/**
 * The HTTP fallback for pilots: a job's status reports and heartbeats, authenticated by that job's
 * token. The token must name this job (else FORBIDDEN) and its attempt must still be the job's live
 * one (else TOKEN_ATTEMPT_ENDED). The same store operations as the WebSocket path, with the same
 * idempotency key, so a report sent both ways is recorded once.
 */
import { z } from 'zod';
import { parseOrThrow } from '../../../shared/validation.ts';
import { PilothouseError } from '../../../shared/errors.ts';
import { isoNow } from '../../../shared/clock.ts';
import { jobStatusReportFields, outputTailSchema } from '../../../shared/protocol/messages.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import { liveJobOfToken } from '../../auth/job-tokens.ts';
import { assertJobTokenFor } from '../../auth/policy.ts';
import { statusReportKey } from '../../ws/report-key.ts';
import { readJsonBody, type Route } from '../router.ts';
import { parseId, type RouteDeps } from './context.ts';

const attempt = z.int().positive();

const statusSchema = z.strictObject({ attempt, ...jobStatusReportFields });

const heartbeatSchema = z.strictObject({
  attempt,
  cpuSec: z.number().min(0),
  rssMB: z.number().min(0),
  wallSec: z.number().min(0),
  outputTail: outputTailSchema.optional(),
});

/** The token is for this job (checked before the body is read: a stranger learns nothing more). */
function tokenJobId(principal: Principal, rawId: string | undefined): number {
  const jobId = parseId(rawId, 'id');
  assertJobTokenFor(principal, jobId);
  return jobId;
}

/** The report names the token's attempt, and that attempt is still the job's live one. */
async function authorizeReport(deps: RouteDeps, principal: Principal, jobId: number, reportAttempt: number) {
  if (principal.attempt !== reportAttempt) {
    throw new PilothouseError('FORBIDDEN', `this token is for attempt ${principal.attempt}, not ${reportAttempt}`, {
      jobId,
    });
  }
  return liveJobOfToken(deps.store, principal);
}

export function jobReportRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/jobs/:id/status',
      policy: 'jobToken',
      summary: "report a job's status (the job's own token, for its live attempt)",
      docs: { body: statusSchema },
      async handler({ req, params, principal, logger }) {
        const jobId = tokenJobId(principal as Principal, params.id);
        const body = parseOrThrow(statusSchema, await readJsonBody(req, 64 * 1024));
        const job = await authorizeReport(deps, principal as Principal, jobId, body.attempt);
        const at = new Date(body.at).toISOString();
        if (body.outputTail) await deps.store.recordOutputTail(job.id, body.attempt, body.outputTail, at);
        const outcome = await deps.store.reportStatus(
          job.id,
          body.attempt,
          {
            status: body.status,
            minorStatus: body.minorStatus,
            applicationStatus: body.applicationStatus,
            exitCode: body.exitCode,
            outputSandbox: body.outputSandbox,
            at,
            source: 'Pilot',
          },
          statusReportKey({ ...body, at }),
        );
        if (!outcome.applied && !outcome.duplicate) {
          logger.warn(
            { jobId: job.id, status: body.status, current: outcome.status },
            'status update refused by state machine',
          );
        }
        return { status: 200, json: { jobId: job.id, attempt: body.attempt, ...outcome } };
      },
    },
    {
      method: 'POST',
      path: '/api/jobs/:id/heartbeat',
      policy: 'jobToken',
      summary: "a job's heartbeat (its own token); answers with the commands pending for the attempt",
      docs: { body: heartbeatSchema },
      async handler({ req, params, principal }) {
        const jobId = tokenJobId(principal as Principal, params.id);
        const body = parseOrThrow(heartbeatSchema, await readJsonBody(req, 16 * 1024));
        const job = await authorizeReport(deps, principal as Principal, jobId, body.attempt);
        const at = isoNow(deps.clock);
        const { cpuSec, rssMB, wallSec } = body;
        const commands = await deps.store.recordHeartbeat(job.id, body.attempt, { cpuSec, rssMB, wallSec }, at);
        if (body.outputTail) await deps.store.recordOutputTail(job.id, body.attempt, body.outputTail, at);
        return { status: 200, json: { jobId: job.id, attempt: body.attempt, commands } };
      },
    },
  ];
}
