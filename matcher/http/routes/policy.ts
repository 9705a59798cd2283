/**
 * The scheduling policy as a live resource: read by job administrators, changed by service
 * administrators (the policy is one for every VO). A change is checked first (an invalid document
 * changes nothing and names the field), stored as a new version with who made it, applied here at
 * once and told to the other replicas. `PUT /api/policy` takes the whole document, optionally with
 * `If-Match: "<version>"`; the finer routes change one entry on top of the latest version.
 */
import { z } from 'zod';
import { PilothouseError } from '../../../shared/errors.ts';
import { isoNow } from '../../../shared/clock.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import { parseOrThrow } from '../../../shared/validation.ts';
import type { PolicyDocumentBody } from '../../matching/scheduling-policy.ts';
import type { PolicyVersion } from '../../matching/stored-policy.ts';
import { readJsonBody, type Reply, type Route } from '../router.ts';
import type { RouteDeps } from './context.ts';

const MAX_POLICY_BYTES = 1024 * 1024;
const DEFAULT_HISTORY_VERSIONS = 20;
const MAX_HISTORY_VERSIONS = 500;

const groupSchema = z
  .strictObject({ share: z.number().positive().optional(), jobSharing: z.boolean().optional() })
  .refine((body) => body.share !== undefined || body.jobSharing !== undefined, {
    message: 'give share, jobSharing or both',
  });
const rankSchema = z.strictObject({ rank: z.int() });
const runningLimitSchema = z.strictObject({ maxRunning: z.int().min(0) });
const matchingDelaySchema = z.strictObject({ delaySec: z.number().positive() });
const historyQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(MAX_HISTORY_VERSIONS).default(DEFAULT_HISTORY_VERSIONS),
});

/** `If-Match: "7"` (or 7, or W/"7"): the version a whole-document change is based on. */
function expectedVersionOf(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const match = /^(?:W\/)?"?(\d{1,15})"?$/.exec(String(header).trim());
  if (!match) {
    throw new PilothouseError('VALIDATION_FAILED', 'If-Match must be the policy version, e.g. "3"', {
      field: 'If-Match',
    });
  }
  return Number(match[1]);
}

type Entry = { site: string; jobType: string };
const samePair = (params: Record<string, string>) => (entry: Entry) =>
  entry.site === params.site && entry.jobType === params.jobType;

/**
 * A list entry of (site, job type), replaced or added, or removed (`value` undefined); false when the
 * list already was so (nothing to store).
 */
function setPair(list: Entry[], params: Record<string, string>, value: Entry | undefined): boolean {
  const index = list.findIndex(samePair(params));
  if (value === undefined) {
    if (index < 0) return false;
    list.splice(index, 1);
  } else if (index < 0) list.push(value);
  else if (JSON.stringify(list[index]) === JSON.stringify(value)) return false;
  else list[index] = value;
  return true;
}

export function policyRoutes(deps: RouteDeps): Route[] {
  const answer = (version: PolicyVersion): Reply => ({
    status: 200,
    json: { ...version, appliedVersion: deps.storedPolicy.version },
    headers: { etag: `"${version.version}"` },
  });

  /** One entry changed on top of the latest version; nothing stored when the entry was already so. */
  const edit =
    (
      bodySchema: z.ZodType | null,
      mutate: (policy: PolicyDocumentBody, params: Record<string, string>, body: never) => boolean,
    ): Route['handler'] =>
    async ({ req, params, principal, logger }) => {
      const caller = principal as Principal;
      const body = bodySchema ? parseOrThrow(bodySchema, await readJsonBody(req, 64 * 1024)) : undefined;
      const { changed, ...version } = await deps.storedPolicy.edit(
        { at: isoNow(deps.clock), by: caller.subject },
        (policy) => mutate(policy, params, body as never),
      );
      if (changed) {
        deps.cluster.policyChanged();
        logger.info({ version: version.version, route: req.url }, 'scheduling policy edited');
      }
      return answer(version);
    };

  /** PUT and DELETE of one (site, job type) entry of a policy list. */
  const siteJobTypeRoutes = (
    segment: string,
    list: 'runningLimits' | 'matchingDelays',
    schema: typeof runningLimitSchema | typeof matchingDelaySchema,
    summaries: { set: string; remove: string },
  ): Route[] => [
    {
      method: 'PUT',
      path: `/api/policy/${segment}/:site/:jobType`,
      policy: 'serviceAdmin',
      summary: summaries.set,
      docs: { body: schema },
      handler: edit(schema, (policy, params, body: object) =>
        setPair(policy[list] as Entry[], params, { site: params.site, jobType: params.jobType, ...body } as Entry),
      ),
    },
    {
      method: 'DELETE',
      path: `/api/policy/${segment}/:site/:jobType`,
      policy: 'serviceAdmin',
      summary: summaries.remove,
      handler: edit(null, (policy, params) => setPair(policy[list] as Entry[], params, undefined)),
    },
  ];

  return [
    {
      method: 'GET',
      path: '/api/policy',
      policy: 'jobAdmin',
      summary:
        'the scheduling policy (every default filled in), its version, who changed it last, and the version this matcher applies',
      handler: async () => answer(await deps.storedPolicy.current()),
    },
    {
      method: 'PUT',
      path: '/api/policy',
      policy: 'serviceAdmin',
      summary:
        'replace the scheduling policy (the document of --policy FILE); with If-Match: "<version>" only if nobody changed it since',
      docs: { body: z.record(z.string(), z.unknown()) },
      async handler({ req, principal, logger }) {
        const caller = principal as Principal;
        const expected = expectedVersionOf(req.headers['if-match']);
        const raw = await readJsonBody(req, MAX_POLICY_BYTES);
        const version = await deps.storedPolicy.replace(raw, { at: isoNow(deps.clock), by: caller.subject }, expected);
        deps.cluster.policyChanged();
        logger.info({ version: version.version }, 'scheduling policy replaced');
        return answer(version);
      },
    },
    {
      method: 'GET',
      path: '/api/policy/history',
      policy: 'jobAdmin',
      summary: 'the versions of the scheduling policy, newest first: who changed what and when (?limit=, default 20)',
      docs: { query: historyQuerySchema },
      async handler({ query }) {
        const { limit } = parseOrThrow(historyQuerySchema, Object.fromEntries(query), 'BAD_QUERY');
        return { status: 200, json: { versions: await deps.storedPolicy.history(limit) } };
      },
    },
    {
      method: 'PUT',
      path: '/api/policy/groups/:group',
      policy: 'serviceAdmin',
      summary: "set one group's share and/or whether it shares its jobs",
      docs: { body: groupSchema },
      handler: edit(groupSchema, (policy, params, body: z.output<typeof groupSchema>) => {
        const group = params.group as string;
        const before = policy.groups[group];
        const after = {
          share: body.share ?? before?.share ?? 1000,
          jobSharing: body.jobSharing ?? before?.jobSharing ?? false,
        };
        policy.groups[group] = after;
        return before === undefined || before.share !== after.share || before.jobSharing !== after.jobSharing;
      }),
    },
    {
      method: 'DELETE',
      path: '/api/policy/groups/:group',
      policy: 'serviceAdmin',
      summary: 'forget one group’s entry (it gets the default share again)',
      handler: edit(null, (policy, params) => delete policy.groups[params.group as string]),
    },
    {
      method: 'PUT',
      path: '/api/policy/job-type-ranks/:jobType',
      policy: 'serviceAdmin',
      summary: 'set the strict rank of one job type (higher is served first)',
      docs: { body: rankSchema },
      handler: edit(rankSchema, (policy, params, body: z.output<typeof rankSchema>) => {
        const jobType = params.jobType as string;
        if (policy.jobTypeRanks[jobType] === body.rank) return false;
        policy.jobTypeRanks[jobType] = body.rank;
        return true;
      }),
    },
    {
      method: 'DELETE',
      path: '/api/policy/job-type-ranks/:jobType',
      policy: 'serviceAdmin',
      summary: 'forget the rank of one job type (rank 0 again)',
      handler: edit(null, (policy, params) => delete policy.jobTypeRanks[params.jobType as string]),
    },
    ...siteJobTypeRoutes('running-limits', 'runningLimits', runningLimitSchema, {
      set: 'set the running limit of a job type at a site (* for any); applies from the next match',
      remove: 'remove the running limit of a job type at a site',
    }),
    ...siteJobTypeRoutes('matching-delays', 'matchingDelays', matchingDelaySchema, {
      set: 'set the delay between two matches of a job type at a site (* for any)',
      remove: 'remove the matching delay of a job type at a site',
    }),
  ];
}
