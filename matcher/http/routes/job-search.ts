/**
 * `POST /api/jobs/search` and `POST /api/jobs/summary`, shaped like DiracX's: filters with typed
 * operators, sort on any column, `?page=&per_page=` (or in the body), 206 with
 * `Content-Range: jobs a-b/N` when partial and 416 past the end. Beyond DiracX: a keyset `cursor`
 * for the next page, which costs neither a count nor an OFFSET scan however deep it goes.
 */
import { z } from 'zod';
import { PilothouseError } from '../../../shared/errors.ts';
import { parseOrThrow } from '../../../shared/validation.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import type { JobView } from '../../../shared/job/model.ts';
import {
  columnOrThrow,
  decodeCursor,
  encodeCursor,
  groupingOf,
  jobSelectionOf,
  searchFingerprint,
} from './job-search-query.ts';
import {
  MAX_PER_PAGE,
  searchSchema,
  sortKeysOf,
  sortValuesOf,
  summarySchema,
  type SearchBody,
} from './job-search-query.ts';
import { completeSort } from '../../store/job-search-sql.ts';
import { MAX_SUMMARY_GROUPS, type JobQuery } from '../../store/job-store.ts';
import { readJsonBody, type Reply, type Route } from '../router.ts';
import type { RouteDeps } from './context.ts';

const DEFAULT_PER_PAGE = 100;
const MAX_SEARCH_BODY_BYTES = 1024 * 1024;
/** Extra fields a client may ask for besides the columns. */
const EXTRA_PARAMETERS = ['description', 'outputSandbox'] as const;

/** DiracX's paging in the URL (also accepted in the body as page, perPage, cursor). */
const pagingQuerySchema = z.object({
  page: z.string().regex(/^\d+$/, 'a whole number from 1').optional(),
  per_page: z.string().regex(/^\d+$/, `a whole number from 1 to ${MAX_PER_PAGE}`).optional(),
  cursor: z.string().max(4096).optional(),
});

/** `?page=`, `?per_page=` and `?cursor=` merged into the body; the same one given twice differently is refused. */
function withQueryString(body: SearchBody, query: URLSearchParams): SearchBody {
  parseOrThrow(pagingQuerySchema, Object.fromEntries(query), 'BAD_QUERY');
  const merged = { ...body };
  const pairs = [
    ['page', 'page'],
    ['per_page', 'perPage'],
  ] as const;
  for (const [name, key] of pairs) {
    const raw = query.get(name);
    if (raw === null) continue;
    const n = Number(raw);
    const limit = key === 'perPage' ? MAX_PER_PAGE : Number.MAX_SAFE_INTEGER;
    if (!/^\d+$/.test(raw) || n < 1 || n > limit) {
      throw new PilothouseError('BAD_QUERY', `${name}: must be a whole number from 1 to ${limit}`, { field: name });
    }
    if (merged[key] !== undefined && merged[key] !== n) {
      throw new PilothouseError('BAD_QUERY', `${name}: given in the URL and in the body with different values`, {
        field: name,
      });
    }
    merged[key] = n;
  }
  const cursor = query.get('cursor');
  if (cursor !== null) merged.cursor = cursor;
  return merged;
}

/** The requested fields of a job (all of them when none are named). */
function projection(parameters: string[] | undefined): ((job: JobView) => Record<string, unknown>) | null {
  if (parameters === undefined) return null;
  const fields = parameters.map((name, index) =>
    (EXTRA_PARAMETERS as readonly string[]).includes(name) ? name : columnOrThrow(name, `parameters.${index}`),
  );
  return (job) => Object.fromEntries(fields.map((field) => [field, job[field as keyof JobView]]));
}

export function jobSearchRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/jobs/search',
      policy: 'user',
      summary:
        'search jobs: filters (eq, neq, gt, gte, lt, lte, like, not like, in, not in, last hours) on any column, sort, page or cursor; 206 with Content-Range when partial',
      docs: { body: searchSchema, query: pagingQuerySchema },
      async handler({ req, query, principal }): Promise<Reply> {
        const raw = parseOrThrow(searchSchema, await readJsonBody(req, MAX_SEARCH_BODY_BYTES), 'BAD_QUERY');
        const body = withQueryString(raw, query);
        const selection = jobSelectionOf(principal as Principal, body, deps.clock.nowMs());
        const sort = sortKeysOf(body.sort);
        const project = projection(body.parameters);
        const perPage = body.perPage ?? DEFAULT_PER_PAGE;
        const fingerprint = searchFingerprint(selection, sort);
        if (body.cursor !== undefined && body.page !== undefined) {
          throw new PilothouseError('BAD_QUERY', 'page: a cursor already says where the page starts', {
            field: 'page',
          });
        }
        const cursor = body.cursor === undefined ? undefined : decodeCursor(body.cursor, fingerprint);
        const page = body.page ?? 1;
        // A keyset page reads one row more than it shows: that row tells whether another page follows.
        const storeQuery: JobQuery = cursor
          ? { ...selection, sort, page: 1, perPage: perPage + 1, after: cursor.after, countTotal: false }
          : { ...selection, sort, page, perPage };
        const found = await deps.store.searchJobs(storeQuery);
        const first = cursor ? cursor.offset : (page - 1) * perPage;
        const total = cursor ? cursor.total : (found.total ?? 0);
        const jobs = found.jobs.slice(0, perPage);
        const hasMore = cursor ? found.jobs.length > perPage : first + jobs.length < total;
        if (jobs.length === 0 && (page > 1 || cursor)) {
          const error = new PilothouseError('PAGE_OUT_OF_RANGE', `no jobs past ${total}: the last page is earlier`, {
            field: cursor ? 'cursor' : 'page',
          });
          return { status: 416, headers: { 'content-range': `jobs */${total}` }, json: { error: error.toJSON() } };
        }
        const last = jobs.at(-1);
        const nextCursor =
          hasMore && last
            ? encodeCursor({
                after: sortValuesOf(last as unknown as Record<string, unknown>, completeSort(sort)),
                offset: first + jobs.length,
                total,
                fingerprint,
              })
            : undefined;
        const partial = first > 0 || hasMore;
        return {
          status: partial ? 206 : 200,
          headers: partial ? { 'content-range': `jobs ${first}-${first + jobs.length - 1}/${total}` } : {},
          json: {
            total,
            ...(cursor ? {} : { page }),
            perPage,
            jobs: project ? jobs.map(project) : jobs,
            ...(nextCursor && { nextCursor }),
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/api/jobs/summary',
      policy: 'user',
      summary:
        'count jobs grouped by up to four columns (status, site, owner, job type...), with the same filters as search',
      docs: { body: summarySchema },
      async handler({ req, principal }): Promise<Reply> {
        const body = parseOrThrow(summarySchema, await readJsonBody(req, MAX_SEARCH_BODY_BYTES), 'BAD_QUERY');
        const grouping = groupingOf(body.grouping);
        const selection = jobSelectionOf(principal as Principal, body, deps.clock.nowMs());
        const counts = await deps.store.summarizeJobs(selection, grouping);
        return {
          status: 200,
          json: {
            grouping,
            groups: counts.map((group) => ({ ...group.values, count: group.count })),
            total: counts.reduce((sum, group) => sum + group.count, 0),
            truncated: counts.length >= MAX_SUMMARY_GROUPS,
          },
        };
      },
    },
  ];
}
