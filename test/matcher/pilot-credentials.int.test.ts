/**
 * Pilot credentials end to end over REST and the WebSocket: a service administrator mints a one-time
 * secret for one pilot (VO, site, stamp); the pilot exchanges it for a short pilot token bound to all
 * three, refreshes it with one-time refresh tokens; reuse of a spent secret or refresh token is
 * refused, logged, and revokes the pilot. Only hashes are stored. Logs are read as JSON records.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createLogger } from '../../shared/logger.ts';
import { startTestMatcher, type ApiResponse, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

describe('pilot credentials', () => {
  let m: TestMatcher;
  let logs: Record<string, unknown>[];
  /** The matcher's clock runs this far ahead of the real one (tests move time instead of sleeping). */
  let skewMs = 0;
  const pilots: RawPilot[] = [];

  const mint = (body: object, token?: string): Promise<ApiResponse> =>
    m.api('POST', '/api/auth/pilot-secrets', { json: body, ...(token !== undefined && { token }) });
  const exchange = (body: object): Promise<ApiResponse> =>
    m.api('POST', '/api/auth/pilot-token', { token: null, json: body });
  const refused = (response: ApiResponse, status: number, code: string, what: string) => {
    assert.equal(response.status, status, `${what}: ${JSON.stringify(response.body)}`);
    assert.equal(response.body.error.code, code, what);
  };
  const logged = (msg: string) => logs.filter((record) => record.msg === msg);

  beforeEach(async () => {
    logs = [];
    const logger = createLogger({
      component: 'matcher',
      level: 'info',
      destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
    });
    skewMs = 0;
    m = await startTestMatcher({
      logger,
      clock: { nowMs: () => Date.now() + skewMs },
      config: { exchangeMaxFailures: 5 },
    });
  });
  afterEach(async () => {
    await Promise.all(pilots.splice(0).map((p) => p.close()));
    await m.close();
  });

  it('only a service administrator mints; the secret is returned once and stored only as its sha256', async () => {
    const jobAdmin = await m.userToken('jadmin', 'vo-a', ['NormalUser', 'JobAdministrator']);
    refused(await mint({ vo: 'vo-a', site: 'Site.A', pilotStamp: 'p1' }, jobAdmin), 403, 'FORBIDDEN', 'job admin');
    refused(await mint({ vo: 'vo-a', site: '*', pilotStamp: 'p1' }), 400, 'VALIDATION_FAILED', 'wildcard site');
    refused(
      await mint({ vo: 'vo-a', site: 'Site.A', pilotStamp: 'p1', ttlSec: 10 ** 9 }),
      400,
      'VALIDATION_FAILED',
      'ttl',
    );
    const minted = await mint({ vo: 'vo-a', site: 'Site.A', pilotStamp: 'p1', ttlSec: 600 });
    assert.equal(minted.status, 201);
    assert.match(minted.body.secret, /^phps_[A-Za-z0-9_-]{43}$/);
    const db = new Database(path.join(m.dataDir, 'pilothouse.sqlite'), { readonly: true });
    try {
      const dump = JSON.stringify(db.prepare('SELECT * FROM pilot_credentials').all());
      assert.ok(!dump.includes(minted.body.secret), 'the secret itself is nowhere in the database');
      assert.match(dump, /"hash":"[0-9a-f]{64}"/);
    } finally {
      db.close();
    }
    assert.ok(!JSON.stringify(logs).includes(minted.body.secret), 'nor in the logs');
  });

  it('the exchange gives a pilot token bound to stamp, VO and site; the hello must match them', async () => {
    const { secret } = (await mint({ vo: 'vo-a', site: 'Site.A', pilotStamp: 'p1' })).body;
    const grant = await exchange({ pilotStamp: 'p1', secret });
    assert.equal(grant.status, 200);
    assert.equal(grant.body.vo, 'vo-a');
    assert.equal(grant.body.site, 'Site.A');
    const lifetimeMs = Date.parse(grant.body.expiresAt) - Date.now();
    assert.ok(lifetimeMs > 0 && lifetimeMs <= 20 * 60_000, 'a short-lived pilot token');
    assert.match(grant.body.refreshToken, /^phpr_/);
    assert.equal(logged('pilot token issued').length, 1);

    const token = grant.body.pilotToken;
    refused(await m.api('POST', '/api/jobs/search', { token, json: {} }), 403, 'FORBIDDEN', 'a pilot token on users');
    for (const [hello, why] of [
      [{ stamp: 'someone-else', site: 'Site.A' }, 'another stamp'],
      [{ stamp: 'p1', site: 'Site.B' }, 'another site'],
    ] as const) {
      const pilot = new RawPilot(m.url, token);
      pilots.push(pilot);
      await new Promise((resolve) => pilot.ws.once('open', resolve));
      const closed = new Promise<number>((resolve) => pilot.ws.once('close', (code) => resolve(code)));
      pilot.send({
        type: 'hello',
        pilotStamp: hello.stamp,
        pilotVersion: 't',
        site: hello.site,
        ce: null,
        queue: null,
        node: { hostname: 'h', cores: 1, memoryMB: 1, os: 'linux', arch: 'x', cpuModel: 'c' },
      });
      assert.equal((await pilot.next('error')).code, 'FORBIDDEN', why);
      assert.equal(await closed, 1008, why);
    }
    const pilot = await RawPilot.connect(m.url, token, { stamp: 'p1', site: 'Site.A' });
    pilots.push(pilot);
    const [jobId] = (
      await m.api('POST', '/api/jobs', { token: await m.userToken('alice', 'vo-a'), json: { executable: 'x' } })
    ).body.jobIds;
    pilot.send({ type: 'offer', offerId: 'o', matchSeq: 0, resources: resources() });
    assert.equal((await pilot.next('match')).job.jobId, jobId);
  });

  it('a spent secret is refused (401 PILOT_SECRET_SPENT), logged, and revokes the pilot it was exchanged for', async () => {
    const { secret } = (await mint({ vo: 'vo-a', site: 'Site.A', pilotStamp: 'p1' })).body;
    const first = await exchange({ pilotStamp: 'p1', secret });
    assert.equal(first.status, 200);
    const pilot = await RawPilot.connect(m.url, first.body.pilotToken, { stamp: 'p1', site: 'Site.A' });
    pilots.push(pilot);

    refused(await exchange({ pilotStamp: 'p1', secret }), 401, 'PILOT_SECRET_SPENT', 'second exchange');
    const reuse = logged('REUSE of a spent pilot credential: refused, and every credential of this pilot revoked');
    assert.equal(reuse.length, 1);
    assert.equal(reuse[0]?.level, 50, 'logged as an error');
    assert.equal(reuse[0]?.pilotStamp, 'p1');
    assert.equal(reuse[0]?.revokedTokens, 1);

    // The first exchange's token and refresh token die with the family; the open session closes.
    refused(await m.api('GET', '/api/pilots/connect', { token: first.body.pilotToken }), 401, 'TOKEN_REVOKED', 'token');
    refused(
      await exchange({ pilotStamp: 'p1', refreshToken: first.body.refreshToken }),
      401,
      'PILOT_SECRET_SPENT',
      'refresh token of a revoked pilot',
    );
    const closed = new Promise<number>((resolve) => pilot.ws.once('close', (code) => resolve(code)));
    pilot.send({ type: 'offer', offerId: 'o', matchSeq: 0, resources: resources() });
    assert.equal((await pilot.next('error')).code, 'TOKEN_REVOKED');
    assert.equal(await closed, 1008);
  });

  it('a secret presented for another stamp, an unknown one, an expired one: 401 PILOT_SECRET_INVALID, not spent', async () => {
    const { secret } = (await mint({ vo: 'vo-a', site: 'Site.A', pilotStamp: 'p1' })).body;
    refused(await exchange({ pilotStamp: 'p2', secret }), 401, 'PILOT_SECRET_INVALID', 'other stamp');
    refused(
      await exchange({ pilotStamp: 'p1', secret: `phps_${'A'.repeat(43)}` }),
      401,
      'PILOT_SECRET_INVALID',
      'unknown',
    );
    refused(await exchange({ pilotStamp: 'p1', secret: 'hunter2' }), 401, 'PILOT_SECRET_INVALID', 'not a secret');
    refused(
      await exchange({ pilotStamp: 'p1', refreshToken: secret }),
      401,
      'PILOT_SECRET_INVALID',
      'secret as refresh',
    );
    assert.equal((await exchange({ pilotStamp: 'p1', secret })).status, 200, 'the refusals did not spend it');
    assert.equal(logged('pilot credential refused: presented for another pilot stamp').length, 1);

    const short = (await mint({ vo: 'vo-a', site: 'Site.A', pilotStamp: 'p3', ttlSec: 1 })).body.secret;
    skewMs += 2_000; // the matcher's clock moves past the secret's expiry
    refused(await exchange({ pilotStamp: 'p3', secret: short }), 401, 'PILOT_SECRET_INVALID', 'expired');
  });

  it('refresh: each refresh token works once and yields a new pilot token; reusing one revokes the pilot', async () => {
    const { secret } = (await mint({ vo: 'vo-a', site: 'Site.A', pilotStamp: 'p1' })).body;
    const first = (await exchange({ pilotStamp: 'p1', secret })).body;
    const second = await exchange({ pilotStamp: 'p1', refreshToken: first.refreshToken });
    assert.equal(second.status, 200);
    assert.notEqual(second.body.pilotToken, first.pilotToken);
    const third = await exchange({ pilotStamp: 'p1', refreshToken: second.body.refreshToken });
    assert.equal(third.status, 200);
    const pilot = await RawPilot.connect(m.url, third.body.pilotToken, { stamp: 'p1', site: 'Site.A' });
    pilots.push(pilot);
    // An attacker replays the first refresh token: refused, and every token of the family dies.
    refused(
      await exchange({ pilotStamp: 'p1', refreshToken: first.refreshToken }),
      401,
      'PILOT_SECRET_SPENT',
      'replay',
    );
    for (const token of [first.pilotToken, second.body.pilotToken, third.body.pilotToken]) {
      refused(await m.api('GET', '/api/pilots/connect', { token }), 401, 'TOKEN_REVOKED', 'family member');
    }
    refused(
      await exchange({ pilotStamp: 'p1', refreshToken: third.body.refreshToken }),
      401,
      'PILOT_SECRET_SPENT',
      'newest',
    );
  });

  it('an address that keeps failing is throttled with 429 RATE_LIMITED, even with a good secret', async () => {
    const { secret } = (await mint({ vo: 'vo-a', site: 'Site.A', pilotStamp: 'p1' })).body;
    for (let i = 0; i < 5; i += 1) {
      refused(
        await exchange({ pilotStamp: 'p1', secret: `phps_${String(i).repeat(43)}` }),
        401,
        'PILOT_SECRET_INVALID',
        `try ${i}`,
      );
    }
    const limited = await exchange({ pilotStamp: 'p1', secret });
    refused(limited, 429, 'RATE_LIMITED', 'sixth');
    assert.equal(limited.body.error.retryable, true);
    assert.equal(logged('pilot token exchange refused').length, 5);
    assert.ok(
      logs.some((r) => r.msg === 'request refused' && r.code === 'RATE_LIMITED'),
      'the throttling is logged',
    );
  });
});
