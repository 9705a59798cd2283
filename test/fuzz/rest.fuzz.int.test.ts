/**
 * REST fuzzing over a real matcher (HTTP on port 0, a SQLite file): for every route the router holds,
 * thousands of requests with hostile path parameters, query strings, bodies (mutations of a valid body,
 * garbage, truncated JSON), content types and tokens of every kind. Every answer must be below 500
 * (the pilot bundle's 503 aside, when none is built) and every refusal must carry a registered error
 * code with its own HTTP status. Afterwards the matcher still serves, and the store invariants hold.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { ERROR_CODES, isErrorCode } from '../../shared/errors.ts';
import { checkInvariants, readSnapshot } from '../../matcher/store/invariants.ts';
import type { Route } from '../../matcher/http/router.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { queueSlot } from '../helpers/queue-slot.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';
import { fuzzRuns, hostileBody, hostileString } from './hostile.ts';
import { OAUTH_ERROR_CODES, type OAuthErrorCode } from '../../matcher/auth/login/oauth-error.ts';

let m: TestMatcher;
const tokens: Record<string, string> = {};
const known = { jobIds: [] as string[], sandbox: '', pilot: 'fuzz-pilot', site: 'Site.A', director: 'sd-fuzz' };

before(async () => {
  m = await startTestMatcher();
  tokens.admin = m.adminToken;
  tokens.user = await m.userToken('alice', 'local');
  tokens.otherVo = await m.userToken('mallory', 'vo-x', ['NormalUser', 'JobAdministrator']);
  tokens.pilot = await m.pilotToken('local');
  const submitted = await m.api('POST', '/api/jobs', {
    token: tokens.user,
    json: Array.from({ length: 6 }, (_, i) => ({ executable: '/bin/echo', arguments: [String(i)] })),
  });
  known.jobIds = (submitted.body.jobIds as number[]).map(String);
  // Two jobs held by a pilot (one Running), so that job tokens and reports have something to act on.
  const pilot = await RawPilot.connect(m.url, tokens.pilot, { stamp: known.pilot });
  for (const [i, offerId] of ['o1', 'o2'].entries()) {
    pilot.send({ type: 'offer', offerId, matchSeq: i, resources: resources() });
    const { job } = await pilot.next('match');
    tokens[`job${i}`] = job.jobToken;
    if (i === 0) {
      pilot.send({
        type: 'job.status',
        ref: 1,
        jobId: job.jobId,
        attempt: job.attempt,
        status: 'Running',
        at: new Date().toISOString(),
      });
      await pilot.next('ack');
    }
  }
  await pilot.close();
  const bytes = randomBytes(256);
  known.sandbox = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await m.api('PUT', `/api/sandboxes/${known.sandbox}`, {
    token: tokens.user,
    body: bytes,
    contentType: 'application/gzip',
  });
});
after(() => m.close());

/** A valid body per route, for the mutations to start from (other routes start from `{}`). */
const VALID_BODIES: Record<string, unknown> = {
  'POST /api/jobs': {
    name: 'fuzz',
    executable: '/bin/echo',
    arguments: ['a'],
    environment: { A: '1' },
    jobType: 'User',
    priority: 1,
    requirements: { cores: { min: 1, max: 2 }, memoryMB: 512, wallTimeSec: 600, sites: ['Site.A'], tags: ['t'] },
  },
  'POST /api/jobs/search': {
    status: ['Waiting'],
    owner: 'alice',
    sort: { field: 'id', direction: 'desc' },
    page: 1,
    perPage: 5,
  },
  'POST /api/jobs/:id/status': {
    attempt: 1,
    status: 'Running',
    minorStatus: 'Application',
    at: new Date().toISOString(),
  },
  'POST /api/jobs/:id/heartbeat': { attempt: 1, cpuSec: 1, rssMB: 10, wallSec: 2 },
  'POST /api/jobs/:id/explain': {
    targets: [
      { site: 'Site.A', ce: null, queue: null, resources: { cores: 1, memoryMB: 1024, wallTimeSec: null, tags: [] } },
    ],
  },
  'POST /api/schedules': {
    cron: '0 3 * * *',
    timeZone: 'Europe/Paris',
    overlap: 'skip',
    catchUp: 'one',
    maxRuns: 10,
    job: { executable: '/bin/echo', arguments: ['a'] },
  },
  'POST /api/sites/:site/ban': { reason: 'downtime' },
  'POST /api/sites/:site/allow': { reason: 'back' },
  'POST /api/auth/pilot-token': { pilotStamp: 'p-1', secret: 'not-a-secret' },
  'POST /api/auth/pilot-secrets': { vo: 'local', site: 'Site.A', pilotStamps: ['p-1'], ttlSec: 60 },
  'POST /api/auth/revoke': { tokenId: 'no-such-token', reason: 'fuzz' },
  'POST /api/queues/demand': {
    queues: [{ key: 'k', vo: 'local', site: 'Site.A', ce: 'ce', queue: 'q', slot: queueSlot({ cores: 1 }) }],
  },
  'POST /api/pilots': {
    director: known.director,
    pilots: [
      {
        stamp: 'rec-1',
        vo: 'local',
        site: 'Site.A',
        ce: 'ce',
        queue: 'q',
        backend: 'local',
        backendRef: '1',
        submittedAt: new Date().toISOString(),
      },
    ],
  },
  'POST /api/pilots/status': { updates: [{ stamp: 'rec-1', status: 'Running', at: new Date().toISOString() }] },
  'POST /api/pilots/:id/drain': { reason: 'fuzz' },
  'PUT /api/site-directors/:name': { cycle: 1, at: new Date().toISOString(), queues: [] },
};

const QUERY_KEYS = [
  'limit',
  'after',
  'page',
  'perPage',
  'status',
  'site',
  'vo',
  'since',
  'until',
  'sort',
  'order',
  'id',
  'tracked',
  'tail',
];

function parameterValue(name: string): fc.Arbitrary<string> {
  const real: string[] =
    name === 'id'
      ? [...known.jobIds, known.pilot, 'rec-1']
      : name === 'ref'
        ? [known.sandbox]
        : name === 'site'
          ? [known.site]
          : [known.director];
  return fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...real) }, { weight: 3, arbitrary: hostileString });
}

function requestFor(route: Route) {
  const names = [...route.path.matchAll(/:([a-z]+)/gi)].map((match) => match[1] as string);
  return fc.record({
    method: fc.oneof(
      { weight: 9, arbitrary: fc.constant(route.method) },
      { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE') },
    ),
    params: fc.tuple(...names.map(parameterValue)),
    query: fc.array(fc.tuple(fc.oneof(fc.constantFrom(...QUERY_KEYS), hostileString), hostileString), { maxLength: 3 }),
    body: fc.option(hostileBody(VALID_BODIES[`${route.method} ${route.path}`] ?? {}), { nil: undefined, freq: 4 }),
    contentType: fc.constantFrom('application/json', 'application/json', 'application/gzip', 'text/plain', undefined),
    token: fc.constantFrom('admin', 'admin', 'user', 'otherVo', 'pilot', 'job0', 'job1', 'garbage', 'none'),
  });
}

function encodeSegment(value: string): string {
  // Half the time as a client would send it, half raw (broken escapes and all) where the URL allows.
  try {
    return value.length % 2 === 0 ? encodeURIComponent(value) : value.replace(/[/?#\s]/g, encodeURIComponent);
  } catch {
    return encodeURIComponent(value.replace(/[\uD800-\uDFFF]/g, '?'));
  }
}

it('every route answers hostile requests with a coded 4xx, never a 5xx', async (t) => {
  const routes = m.matcher.router.routes();
  assert.ok(routes.length >= 35, `the router holds ${routes.length} routes`);
  let requests = 0;
  const statuses = new Map<number, number>();
  for (const route of routes) {
    await fc.assert(
      fc.asyncProperty(requestFor(route), async (request) => {
        let index = 0;
        const path = route.path.replace(/:([a-z]+)/gi, () => encodeSegment(request.params[index++] ?? ''));
        const query = request.query.map(([k, v]) => `${encodeSegment(k)}=${encodeSegment(v)}`).join('&');
        const headers: Record<string, string> = {};
        if (request.token !== 'none') headers.authorization = `Bearer ${tokens[request.token] ?? 'x.y.z'}`;
        if (request.contentType !== undefined) headers['content-type'] = request.contentType;
        const hasBody = request.body !== undefined && request.method !== 'GET';
        const response = await fetch(`${m.url}${path}${query ? `?${query}` : ''}`, {
          method: request.method,
          headers,
          ...(hasBody && { body: request.body }),
        });
        if (/^text\/event-stream/.test(response.headers.get('content-type') ?? '')) {
          // The live event stream never ends by itself: its opening is the answer.
          await response.body?.cancel();
          requests += 1;
          statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
          return;
        }
        const text = await response.text();
        requests += 1;
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        const what = `${request.method} ${path}?${query} -> ${response.status} ${text.slice(0, 300)}`;
        if (response.status < 400) return;
        if (/^text\/html/.test(response.headers.get('content-type') ?? '')) {
          // Sign-in pages a person sees: a 4xx page naming a registered code or the OAuth error.
          assert.ok(response.status < 500, what);
          const named = /<small>([A-Za-z_]+)<\/small>/.exec(text)?.[1];
          assert.ok(
            isErrorCode(named) || OAUTH_ERROR_CODES.includes(named as OAuthErrorCode),
            `page names no code: ${what}`,
          );
          return;
        }
        const parsed = JSON.parse(text) as { error?: unknown };
        if (typeof parsed.error === 'string') {
          // The OAuth endpoints answer the RFCs' errors (RFC 6749 §5.2, RFC 8628 §3.5).
          assert.ok(OAUTH_ERROR_CODES.includes(parsed.error as OAuthErrorCode), `unknown OAuth error: ${what}`);
          assert.ok([400, 401].includes(response.status), what);
          return;
        }
        const code = (parsed as { error?: { code?: unknown } }).error?.code;
        assert.ok(isErrorCode(code), `no registered code: ${what}`);
        assert.equal(ERROR_CODES[code].httpStatus, response.status, what);
        assert.ok(response.status < 500 || code === 'PILOT_BUNDLE_UNAVAILABLE', what);
      }),
      { numRuns: fuzzRuns(80) },
    );
  }
  assert.ok(requests >= 35 * 80 || process.env.FUZZ_RUNS !== undefined, `${requests} requests made`);
  // Most requests must get past the first checks for the fuzzing to mean anything.
  assert.ok(
    [...statuses.keys()].some((status) => status < 300),
    `statuses seen: ${[...statuses.entries()].join(' ')}`,
  );

  t.diagnostic(
    `${requests} requests; statuses ${[...statuses.entries()]
      .sort()
      .map(([s, n]) => `${s}:${n}`)
      .join(' ')}`,
  );
  assert.equal((await m.api('GET', '/healthz', { token: null })).status, 200, 'still serving');
  assert.deepEqual(checkInvariants(await readSnapshot(m.matcher.store)), []);
});
