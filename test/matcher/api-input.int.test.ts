/** Bad input gets a clear 4xx with a stable code, and nothing is stored. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { TokenService } from '../../matcher/auth/tokens.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';

describe('REST API - bad input', () => {
  let m: TestMatcher;
  before(async () => {
    m = await startTestMatcher();
  });
  after(() => m.close());

  async function assertNothingStored(): Promise<void> {
    const search = await m.api('POST', '/api/jobs/search', { json: {} });
    assert.equal(search.status, 200);
    assert.equal(search.body.total, 0, 'no job may be stored by a refused request');
  }

  const cases: { name: string; body: string; code: string; field?: string; status?: number }[] = [
    { name: 'malformed JSON', body: '{"executable": ', code: 'BAD_JSON' },
    {
      name: 'an unknown field',
      body: JSON.stringify({ executable: 'x', requirments: {} }),
      code: 'VALIDATION_FAILED',
      field: 'requirments',
    },
    {
      name: 'an unknown nested field',
      body: JSON.stringify({ executable: 'x', requirements: { cpus: 2 } }),
      code: 'VALIDATION_FAILED',
      field: 'requirements.cpus',
    },
    {
      name: 'a wrong type',
      body: JSON.stringify({ executable: 'x', arguments: 'not-an-array' }),
      code: 'VALIDATION_FAILED',
      field: 'arguments',
    },
    {
      name: 'a missing executable',
      body: JSON.stringify({ name: 'no exe' }),
      code: 'VALIDATION_FAILED',
      field: 'executable',
    },
    {
      name: 'an empty executable',
      body: JSON.stringify({ executable: '' }),
      code: 'VALIDATION_FAILED',
      field: 'executable',
    },
    {
      name: 'cores.max below cores.min',
      body: JSON.stringify({ executable: 'x', requirements: { cores: { min: 4, max: 2 } } }),
      code: 'VALIDATION_FAILED',
      field: 'requirements.cores.max',
    },
    {
      name: 'a site both required and banned',
      body: JSON.stringify({ executable: 'x', requirements: { sites: ['A'], bannedSites: ['A'] } }),
      code: 'VALIDATION_FAILED',
      field: 'requirements.bannedSites',
    },
    {
      name: 'a bulk request with one bad job',
      body: JSON.stringify([{ executable: 'a' }, { executable: 'b' }, { executable: 'c', priority: 99 }]),
      code: 'VALIDATION_FAILED',
      field: '[2].priority',
    },
    { name: 'an empty bulk request', body: '[]', code: 'VALIDATION_FAILED' },
    { name: 'a JSON scalar', body: '42', code: 'VALIDATION_FAILED' },
    {
      name: 'an unknown input sandbox',
      body: JSON.stringify({ executable: 'x', inputSandbox: [`sha256:${'0'.repeat(64)}`] }),
      code: 'VALIDATION_FAILED',
      field: 'inputSandbox[0]',
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name}`, async () => {
      const response = await m.api('POST', '/api/jobs', { body: c.body });
      assert.equal(response.status, c.status ?? 400);
      assert.equal(response.body.error.code, c.code);
      assert.equal(typeof response.body.error.message, 'string');
      if (c.field !== undefined) assert.equal(response.body.error.field, c.field);
      await assertNothingStored();
    });
  }

  it('refuses a body that is not JSON by content type (415)', async () => {
    const response = await m.api('POST', '/api/jobs', { body: 'executable=x', contentType: 'text/plain' });
    assert.equal(response.status, 415);
    assert.equal(response.body.error.code, 'UNSUPPORTED_MEDIA_TYPE');
    await assertNothingStored();
  });

  it('answers 404 JOB_NOT_FOUND for an unknown job and 400 for a malformed id', async () => {
    const unknown = await m.api('GET', '/api/jobs/123456');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'JOB_NOT_FOUND');
    const malformed = await m.api('GET', '/api/jobs/12abc');
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.error.field, 'id');
  });

  it('answers 400 BAD_PATH for broken percent-encoding and unparsable targets, over REST and WebSocket upgrade', async () => {
    for (const target of ['/api/jobs/%E0', '/api/jobs/%', '/api/pilots/%C3%28', '/api/jobs/%E0/kill']) {
      const response = await m.api(target.endsWith('kill') ? 'POST' : 'GET', target);
      assert.equal(response.status, 400, target);
      assert.equal(response.body.error.code, 'BAD_PATH', target);
    }
    // Targets fetch() would never send, written on a raw socket: the matcher answers, and lives on.
    for (const line of ['GET http://[bad/api/jobs HTTP/1.1', 'GET //[::1/x HTTP/1.1']) {
      const upgrade = line.startsWith('GET //') ? '\r\nConnection: Upgrade\r\nUpgrade: websocket' : '';
      const answer = await rawRequest(`${line}\r\nHost: x${upgrade}\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 4\d\d /, `${line}: ${answer.slice(0, 80)}`);
    }
    assert.equal((await m.api('GET', '/api/jobs/1')).status, 404, 'still serving');
  });

  async function rawRequest(text: string): Promise<string> {
    const { port } = new URL(m.url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.write(text);
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
      if (answer.includes('\r\n\r\n')) socket.end();
    });
    await new Promise((resolve) => socket.on('close', resolve));
    return answer;
  }

  it('refuses a missing, malformed or foreign token with 401 and stores nothing', async () => {
    const body = JSON.stringify({ executable: 'x' });
    const missing = await m.api('POST', '/api/jobs', { body, token: null });
    assert.equal(missing.status, 401);
    assert.equal(missing.body.error.code, 'TOKEN_MISSING');
    const garbage = await m.api('POST', '/api/jobs', { body, token: 'not.a.jwt' });
    assert.equal(garbage.status, 401);
    assert.equal(garbage.body.error.code, 'TOKEN_INVALID');
    const other = await startTestMatcher();
    try {
      const foreign = await m.api('POST', '/api/jobs', { body, token: other.adminToken });
      assert.equal(foreign.status, 401, "another matcher's token is not valid here");
      assert.equal(foreign.body.error.code, 'TOKEN_INVALID');
    } finally {
      await other.close();
    }
    const wrongScheme = await m.api('GET', '/api/jobs/1', { token: null, headers: { authorization: 'Basic abc' } });
    assert.equal(wrongScheme.body.error.code, 'TOKEN_INVALID');
    await assertNothingStored();
  });

  it('refuses an expired token with TOKEN_EXPIRED', async () => {
    // Signed by this matcher's own key, two hours ago, for one minute.
    const past = new TokenService({ keys: m.matcher.keys, clock: { nowMs: () => Date.now() - 7_200_000 } });
    const expired = await past.issue({
      kind: 'user',
      subject: 'u',
      vo: 'vo-a',
      group: 'g',
      properties: ['NormalUser'],
      ttlSec: 60,
    });
    const response = await m.api('GET', '/api/jobs/1', { token: expired });
    assert.equal(response.status, 401);
    assert.equal(response.body.error.code, 'TOKEN_EXPIRED');
  });

  it('refuses a pilot token on a user route (403)', async () => {
    const response = await m.api('POST', '/api/jobs', {
      body: JSON.stringify({ executable: 'x' }),
      token: await m.pilotToken(),
    });
    assert.equal(response.status, 403);
    assert.equal(response.body.error.code, 'FORBIDDEN');
    await assertNothingStored();
  });

  it('refuses bad search filters with BAD_QUERY naming the field', async () => {
    const badStatus = await m.api('POST', '/api/jobs/search', { json: { status: 'Sleeping' } });
    assert.equal(badStatus.status, 400);
    assert.equal(badStatus.body.error.code, 'BAD_QUERY');
    assert.equal(badStatus.body.error.field, 'status');
    const unknown = await m.api('POST', '/api/jobs/search', { json: { colour: 'red' } });
    assert.equal(unknown.body.error.field, 'colour');
    const perPage = await m.api('POST', '/api/jobs/search', { json: { perPage: 100_000 } });
    assert.equal(perPage.body.error.field, 'perPage');
  });

  it('answers unknown routes and methods with stable codes', async () => {
    assert.equal((await m.api('GET', '/api/nothing')).body.error.code, 'ROUTE_NOT_FOUND');
    const method = await m.api('DELETE', '/api/jobs/search');
    assert.equal(method.status, 405);
    assert.equal(method.body.error.code, 'METHOD_NOT_ALLOWED');
  });
});
