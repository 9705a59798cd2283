/** Matching routes: explain a job against offers or queues, and the site mask. */
import { z } from 'zod';
import { parseOrThrow } from '../../../shared/validation.ts';
import { isoNow } from '../../../shared/clock.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import { offerResourcesSchema } from '../../../shared/protocol/messages.ts';
import { explainJob, type ExplainTarget } from '../../matching/explain.ts';
import { readJsonBody, type Route } from '../router.ts';
import type { RouteDeps } from './context.ts';
import { loadVisibleJob } from './jobs.ts';

const resourceSchema = z.strictObject({
  site: z.string().min(1).max(128),
  ce: z.string().min(1).max(128).nullable().default(null),
  queue: z.string().min(1).max(128).nullable().default(null),
  resources: offerResourcesSchema,
});
const explainSchema = z.strictObject({ targets: z.array(resourceSchema).max(1000).optional() });
const siteStatusSchema = z.strictObject({ reason: z.string().min(1).max(1024) });

async function optionalJsonBody(req: Parameters<typeof readJsonBody>[0]): Promise<unknown> {
  const length = Number(req.headers['content-length'] ?? 0);
  if (!req.headers['content-type'] && !(length > 0)) return {};
  return readJsonBody(req, 1024 * 1024);
}

export function matchingRoutes(deps: RouteDeps): Route[] {
  const setSite =
    (status: 'Active' | 'Banned'): Route['handler'] =>
    async ({ req, params, principal, logger }) => {
      const caller = principal as Principal;
      const { reason } = parseOrThrow(siteStatusSchema, await readJsonBody(req, 64 * 1024));
      const site = params.site ?? '';
      await deps.matchService.setSiteStatus({
        site,
        status,
        reason,
        changedBy: caller.subject,
        changedAt: isoNow(deps.clock),
      });
      deps.cluster.siteMaskChanged();
      logger.info({ site, status, reason }, 'site mask changed');
      return { status: 200, json: { site, status, reason } };
    };
  return [
    {
      method: 'POST',
      path: '/api/jobs/:id/explain',
      policy: 'user',
      summary:
        "why a job does or does not match: each requirement against the given queues/offers, or the pilots' parked offers",
      docs: { body: explainSchema },
      async handler({ req, params, principal }) {
        const job = await loadVisibleJob(deps, principal as Principal, params.id);
        const body = parseOrThrow(explainSchema, await optionalJsonBody(req));
        const targets: ExplainTarget[] = body.targets
          ? body.targets.map((t) => ({
              kind: 'resource',
              offer: { vo: job.vo, site: t.site, ce: t.ce, queue: t.queue, resources: t.resources },
            }))
          : deps.matchService.parkedOffers().map((p) => ({ kind: 'offer', pilotId: p.pilotId, offer: p.offer }));
        const verdicts = await explainJob(job, targets, {
          policy: deps.matchService.policy,
          isBanned: (site) => deps.matchService.isBanned(site),
          runningAtSite: (site) => deps.store.runningAtSite(site),
        });
        const note =
          job.status === 'Waiting'
            ? targets.length === 0
              ? 'no pilot of this VO is waiting for work right now; give targets to explain against a queue'
              : undefined
            : `the job is ${job.status}: only Waiting jobs are matched`;
        return {
          status: 200,
          json: { jobId: job.id, status: job.status, taskQueueId: job.taskQueueId, ...(note && { note }), verdicts },
        };
      },
    },
    {
      method: 'GET',
      path: '/api/sites',
      policy: 'user',
      summary: 'the site mask: sites that were banned or allowed, with reason and who changed them',
      handler: async () => ({ status: 200, json: { sites: await deps.store.siteMask() } }),
    },
    {
      method: 'POST',
      path: '/api/sites/:site/ban',
      policy: 'serviceAdmin',
      summary: 'ban a site: from now on it receives only Test jobs',
      docs: { body: siteStatusSchema },
      handler: setSite('Banned'),
    },
    {
      method: 'POST',
      path: '/api/sites/:site/allow',
      policy: 'serviceAdmin',
      summary: 'allow a banned site again',
      docs: { body: siteStatusSchema },
      handler: setSite('Active'),
    },
  ];
}
