/**
 * Every registered route names a policy, and every credential a route should not accept is refused
 * before its handler runs: anonymous callers (401), the wrong token kind (403), a user without the
 * needed property (403). The expected access of each route is written down HERE, independently of
 * the policy table: a new route fails this test until someone decides who may call it.
 * The pilot WebSocket gets the same treatment, and every message type has a policy.
 */
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { PILOT_MESSAGE_POLICIES, POLICIES } from '../../matcher/auth/policy.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';
import type { PilotMessageBody } from '../../shared/protocol/messages.ts';

type Role = 'normal' | 'jobAdmin' | 'serviceAdmin' | 'pilot' | 'job';
const ROLES: readonly Role[] = ['normal', 'jobAdmin', 'serviceAdmin', 'pilot', 'job'];
const USERS: Role[] = ['normal', 'jobAdmin', 'serviceAdmin'];

/** Who may call each route. 'public' = anyone, without a token. */
const EXPECTED_ACCESS: Record<string, Role[] | 'public'> = {
  'POST /api/jobs': ['normal', 'serviceAdmin'], // NormalUser (the admin token has it)
  'GET /api/jobs/:id': USERS,
  'POST /api/jobs/search': USERS,
  'POST /api/jobs/summary': USERS,
  'GET /api/jobs/:id/logs': USERS,
  'POST /api/jobs/:id/kill': USERS,
  'POST /api/jobs/:id/reschedule': USERS,
  'POST /api/jobs/:id/delete': USERS,
  'POST /api/jobs/kill': USERS,
  'POST /api/jobs/reschedule': USERS,
  'POST /api/jobs/delete': USERS,
  'GET /api/jobs/:id/output': USERS,
  'POST /api/jobs/:id/status': ['job'],
  'POST /api/jobs/:id/heartbeat': ['job'],
  'PUT /api/sandboxes/:ref': [...USERS, 'job'],
  'POST /api/sandboxes/missing': [...USERS, 'job'],
  'GET /api/sandboxes/:ref': [...USERS, 'job'],
  'POST /api/auth/pilot-token': 'public',
  'POST /api/auth/pilot-secrets': ['serviceAdmin'],
  'POST /api/auth/revoke': ['serviceAdmin'],
  'GET /api/auth/userinfo': USERS,
  'GET /healthz': 'public',
  'GET /readyz': 'public',
  'GET /metrics': 'public',
  'GET /api/openapi.json': 'public',
  'GET /api/docs': 'public',
  'GET /api/docs/:asset': 'public',
  'GET /.well-known/jwks.json': 'public',
  'POST /api/jobs/:id/explain': USERS,
  'GET /api/sites': USERS,
  'POST /api/sites/:site/ban': ['serviceAdmin'],
  'POST /api/sites/:site/allow': ['serviceAdmin'],
  'GET /api/task-queues': ['jobAdmin', 'serviceAdmin'],
  'GET /api/task-queues/:id': ['jobAdmin', 'serviceAdmin'],
  'POST /api/task-queues/:id/pause': ['jobAdmin', 'serviceAdmin'],
  'POST /api/task-queues/:id/resume': ['jobAdmin', 'serviceAdmin'],
  'POST /api/task-queues/:id/boost': ['jobAdmin', 'serviceAdmin'],
  'POST /api/task-queues/:id/kill': ['jobAdmin', 'serviceAdmin'],
  'POST /api/task-queues/:id/reschedule': ['jobAdmin', 'serviceAdmin'],
  'POST /api/task-queues/boost': ['jobAdmin', 'serviceAdmin'],
  'POST /api/schedules': ['normal', 'serviceAdmin'], // like a submission
  'GET /api/schedules': USERS,
  'GET /api/schedules/:id': USERS,
  'GET /api/schedules/:id/runs': USERS,
  'POST /api/schedules/:id/pause': USERS,
  'POST /api/schedules/:id/resume': USERS,
  'DELETE /api/schedules/:id': USERS,
  'POST /api/jobs/priority': USERS,
  'GET /api/policy': ['jobAdmin', 'serviceAdmin'],
  'GET /api/policy/history': ['jobAdmin', 'serviceAdmin'],
  'PUT /api/policy': ['serviceAdmin'],
  'PUT /api/policy/groups/:group': ['serviceAdmin'],
  'DELETE /api/policy/groups/:group': ['serviceAdmin'],
  'PUT /api/policy/job-type-ranks/:jobType': ['serviceAdmin'],
  'DELETE /api/policy/job-type-ranks/:jobType': ['serviceAdmin'],
  'PUT /api/policy/running-limits/:site/:jobType': ['serviceAdmin'],
  'DELETE /api/policy/running-limits/:site/:jobType': ['serviceAdmin'],
  'PUT /api/policy/matching-delays/:site/:jobType': ['serviceAdmin'],
  'DELETE /api/policy/matching-delays/:site/:jobType': ['serviceAdmin'],
  'GET /api/pilots/:id': ['jobAdmin', 'serviceAdmin'],
  'GET /api/pilots/:id/logs': ['jobAdmin', 'serviceAdmin'],
  'POST /api/pilots/:id/drain': ['jobAdmin', 'serviceAdmin'],
  'GET /api/jobs/:id/usage': USERS,
  'GET /api/pilots/connect': ['pilot'],
  'POST /api/pilots': ['serviceAdmin'],
  'POST /api/pilots/status': ['serviceAdmin'],
  'GET /api/pilots': ['jobAdmin', 'serviceAdmin'],
  'PUT /api/pilots/:id/output': ['serviceAdmin'],
  'GET /api/pilots/:id/output': ['jobAdmin', 'serviceAdmin'],
  'POST /api/queues/demand': ['serviceAdmin'],
  'PUT /api/site-directors/:name': ['serviceAdmin'],
  'GET /api/site-directors': ['jobAdmin', 'serviceAdmin'],
  'GET /api/site-directors/:name': ['jobAdmin', 'serviceAdmin'],
  'GET /api/pilot-bundle/info': 'public',
  'GET /api/pilot-bundle': 'public',
  'GET /.well-known/oauth-authorization-server': 'public',
  'POST /api/auth/device': 'public',
  'GET /api/auth/device': 'public',
  'GET /api/auth/authorize': 'public',
  'GET /api/auth/callback': 'public',
  'POST /api/auth/token': 'public',
  'POST /api/auth/token/revoke': 'public',
  'GET /api/events': USERS,
  'GET /': 'public',
  'GET /ui': 'public',
  'GET /ui/': 'public',
  'GET /ui/:view': 'public',
  'GET /ui/assets/:file': 'public',
};

let m: TestMatcher;
let pilot: RawPilot;
const tokens = {} as Record<Role, string>;
let jobId = 0;

before(async () => {
  m = await startTestMatcher();
  tokens.normal = await m.userToken('alice', 'local', ['NormalUser']);
  tokens.jobAdmin = await m.userToken('jadmin', 'local', ['JobAdministrator']);
  tokens.serviceAdmin = m.adminToken;
  tokens.pilot = await m.pilotToken('local');
  // A live job token: a real match.
  [jobId] = (await m.api('POST', '/api/jobs', { json: { executable: 'true' } })).body.jobIds;
  pilot = await RawPilot.connect(m.url, tokens.pilot, { stamp: 'policy-pilot' });
  pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
  tokens.job = (await pilot.next('match')).job.jobToken;
});
after(async () => {
  await pilot.close();
  await m.close();
});

const key = (route: { method: string; path: string }) => `${route.method} ${route.path}`;

it('routes - every registered route has a known policy and an expected access written in this test', () => {
  const routes = m.matcher.router.routes();
  assert.ok(routes.length >= Object.keys(EXPECTED_ACCESS).length - 1, 'the route table is populated');
  for (const route of routes) {
    assert.ok(Object.hasOwn(POLICIES, route.policy), `${key(route)} has an unknown policy ${route.policy}`);
    const expected = EXPECTED_ACCESS[key(route)];
    assert.ok(expected, `${key(route)} is not in EXPECTED_ACCESS: decide which tokens it accepts and add it`);
    const policy = POLICIES[route.policy];
    if (expected === 'public') {
      assert.equal(policy.public, true, `${key(route)} should be public`);
      continue;
    }
    assert.equal(policy.public, false, `${key(route)} must not be public`);
    const expectedKinds = new Set(expected.map((role) => (USERS.includes(role) ? 'user' : role)));
    assert.deepEqual(
      new Set(policy.kinds),
      expectedKinds,
      `${key(route)} accepts token kinds ${policy.kinds.join(',')}`,
    );
  }
  const registered = new Set(routes.map(key));
  for (const expected of Object.keys(EXPECTED_ACCESS)) assert.ok(registered.has(expected), `${expected} is registered`);
});

it('routes - anonymous callers get 401 TOKEN_MISSING and every role a route does not accept gets 403', async () => {
  const before = (await m.api('POST', '/api/jobs/search', { json: {} })).body.total;
  const concrete = (path: string) =>
    path
      .replace(':id', String(jobId))
      .replace(':ref', `sha256:${'0'.repeat(64)}`)
      .replace(':site', 'Site.A');
  let refusals = 0;
  for (const route of m.matcher.router.routes()) {
    const expected = EXPECTED_ACCESS[key(route)];
    if (expected === 'public' || expected === undefined) continue;
    const body = route.method === 'GET' ? {} : { json: {} };
    const anonymous = await m.api(route.method, concrete(route.path), { token: null, ...body });
    assert.equal(anonymous.status, 401, `${key(route)} must refuse anonymous callers`);
    assert.equal(anonymous.body.error.code, 'TOKEN_MISSING');
    for (const role of ROLES.filter((r) => !expected.includes(r))) {
      const response = await m.api(route.method, concrete(route.path), { token: tokens[role], ...body });
      assert.equal(response.status, 403, `${key(route)} must refuse a ${role} token (got ${response.status})`);
      assert.equal(response.body.error.code, 'FORBIDDEN', `${key(route)} with a ${role} token`);
      refusals += 1;
    }
  }
  assert.ok(refusals >= 40, `exercised ${refusals} refusals`);
  assert.equal((await m.api('POST', '/api/jobs/search', { json: {} })).body.total, before, 'nothing was created');
  const job = (await m.api('GET', `/api/jobs/${jobId}`)).body;
  assert.equal(job.status, 'Matched', 'the job was not touched by any refused call');
});

it('routes - the pilot WebSocket refuses a missing token, a user token and a job token at the upgrade', async () => {
  const statusOf = (headers: Record<string, string>) =>
    new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${m.url.replace('http', 'ws')}/api/pilots/connect`, { headers });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('upgrade should have been refused')));
      ws.on('error', () => {});
    });
  assert.equal(await statusOf({}), 401);
  assert.equal(await statusOf({ authorization: `Bearer ${m.adminToken}` }), 403);
  assert.equal(await statusOf({ authorization: `Bearer ${tokens.job}` }), 403);
  assert.equal(await statusOf({ authorization: 'Bearer not-a-jwt' }), 401);
});

it('routes - every WebSocket message type has a policy; none but hello passes before hello', async () => {
  // Completeness over the protocol's message union is a compile-time check (`satisfies` in policy.ts).
  for (const [type, policy] of Object.entries(PILOT_MESSAGE_POLICIES)) {
    assert.equal(policy.beforeHello, type === 'hello', `${type}: only hello may come first`);
    assert.ok(policy.summary.length > 0);
  }
  const fresh = new RawPilot(m.url, tokens.pilot);
  await new Promise((resolve) => fresh.ws.once('open', resolve));
  const early: PilotMessageBody[] = [
    { type: 'offer', offerId: 'x', matchSeq: 0, resources: resources() },
    { type: 'offer.cancel', offerId: 'x' },
    { type: 'job.status', ref: 1, jobId, attempt: 1, at: new Date().toISOString(), status: 'Running' as const },
    {
      type: 'job.statuses',
      ref: 4,
      reports: [{ jobId, attempt: 1, at: new Date().toISOString(), status: 'Running' as const }],
    },
    { type: 'heartbeat', ref: 2, jobs: [] },
    { type: 'log', ref: 3, lines: [{ seq: 1, line: '{}' }] },
    { type: 'bye', reason: 'x' },
  ];
  for (const message of early) {
    fresh.send(message);
    const error = await fresh.next('error');
    assert.equal(error.code, 'PROTOCOL_VIOLATION', `${message.type} before hello`);
  }
  assert.equal((await m.api('GET', `/api/jobs/${jobId}`)).body.status, 'Matched', 'nothing reported');
  await fresh.close();
});
