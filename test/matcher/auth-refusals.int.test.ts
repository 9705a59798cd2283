/**
 * Each refusal the security model promises, against a real matcher: the answer is 401 or 403 with a
 * stable code, and nothing changed (the job keeps its status and history, nothing is created).
 * Revocations are made the way an operator makes them: on the data directory, from another process's
 * point of view (a second KeyRing / credential store on the same files), while the matcher runs.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { systemClock } from '../../shared/clock.ts';
import { KeyRing } from '../../matcher/auth/key-ring.ts';
import { TokenService } from '../../matcher/auth/tokens.ts';
import { DEFAULT_MAX_TOKEN_TTL_SEC } from '../../matcher/config.ts';
import { openSqliteCredentialStore } from '../../matcher/store/sqlite/sqlite-credential-store.ts';
import { startTestMatcher, type ApiResponse, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

describe('auth refusals', () => {
  let m: TestMatcher;
  let alicesJob: number;
  let carolsJob: number;
  const pilots: RawPilot[] = [];

  const snapshot = async (jobId: number) => {
    const job = (await m.api('GET', `/api/jobs/${jobId}`)).body;
    const total = (await m.api('POST', '/api/jobs/search', { json: {} })).body.total;
    return { status: job.status, history: job.history.length, total };
  };
  const refused = (response: ApiResponse, status: number, code: string, what: string) => {
    assert.equal(response.status, status, `${what}: HTTP ${response.status} ${JSON.stringify(response.body)}`);
    assert.equal(response.body.error.code, code, what);
  };
  const submitAs = async (token: string) =>
    (await m.api('POST', '/api/jobs', { token, json: { executable: 'true' } })).body.jobIds[0] as number;
  const matchOne = async (vo: string, stamp: string) => {
    const pilot = await RawPilot.connect(m.url, await m.pilotToken(vo), { stamp });
    pilots.push(pilot);
    pilot.send({ type: 'offer', offerId: `${stamp}-o`, matchSeq: 0, resources: resources() });
    return (await pilot.next('match')).job;
  };

  before(async () => {
    m = await startTestMatcher();
    alicesJob = await submitAs(await m.userToken('alice', 'vo-a'));
    carolsJob = await submitAs(await m.userToken('carol', 'vo-b'));
  });
  after(async () => {
    await Promise.all(pilots.map((p) => p.close()));
    await m.close();
  });

  it('no token: 401 TOKEN_MISSING; a malformed header or a non-JWT: 401 TOKEN_INVALID', async () => {
    const before = await snapshot(alicesJob);
    refused(await m.api('POST', `/api/jobs/${alicesJob}/kill`, { token: null }), 401, 'TOKEN_MISSING', 'no token');
    refused(
      await m.api('POST', `/api/jobs/${alicesJob}/kill`, { token: null, headers: { authorization: 'Basic eDp5' } }),
      401,
      'TOKEN_INVALID',
      'not a bearer header',
    );
    refused(await m.api('POST', `/api/jobs/${alicesJob}/kill`, { token: 'garbage' }), 401, 'TOKEN_INVALID', 'no JWT');
    assert.deepEqual(await snapshot(alicesJob), before);
  });

  it('bad signature: a token minted with a foreign key, or with its claims edited, is 401 TOKEN_INVALID', async () => {
    const before = await snapshot(alicesJob);
    const foreignDir = path.join(m.dataDir, 'foreign');
    const foreign = await KeyRing.open({ dataDir: foreignDir, clock: systemClock, maxTokenTtlSec: 3600 });
    const forged = await new TokenService({ keys: foreign, clock: systemClock }).issue({
      kind: 'user',
      subject: 'alice',
      vo: 'vo-a',
      group: 'vo-a_user',
      properties: ['NormalUser', 'ServiceAdministrator'],
      ttlSec: 600,
    });
    refused(await m.api('POST', `/api/jobs/${alicesJob}/kill`, { token: forged }), 401, 'TOKEN_INVALID', 'foreign key');
    const [h, p, s] = (await m.userToken('mallory', 'vo-a')).split('.');
    const claims = JSON.parse(Buffer.from(p as string, 'base64url').toString());
    const edited = Buffer.from(JSON.stringify({ ...claims, sub: 'alice' })).toString('base64url');
    refused(
      await m.api('POST', `/api/jobs/${alicesJob}/kill`, { token: `${h}.${edited}.${s}` }),
      401,
      'TOKEN_INVALID',
      'edited',
    );
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`;
    refused(await m.api('POST', `/api/jobs/${alicesJob}/kill`, { token: unsigned }), 401, 'TOKEN_INVALID', 'alg none');
    assert.deepEqual(await snapshot(alicesJob), before);
  });

  it('expired token: 401 TOKEN_EXPIRED', async () => {
    const before = await snapshot(alicesJob);
    const keys = await KeyRing.open({
      dataDir: m.dataDir,
      clock: systemClock,
      maxTokenTtlSec: DEFAULT_MAX_TOKEN_TTL_SEC,
    });
    const past = { nowMs: () => Date.now() - 7_200_000 };
    const expired = await new TokenService({ keys, clock: past }).issue({
      kind: 'user',
      subject: 'alice',
      vo: 'vo-a',
      group: 'vo-a_user',
      properties: ['NormalUser'],
      ttlSec: 3600,
    });
    refused(await m.api('POST', `/api/jobs/${alicesJob}/kill`, { token: expired }), 401, 'TOKEN_EXPIRED', 'expired');
    assert.deepEqual(await snapshot(alicesJob), before);
  });

  it("a token of another VO: 403 on the job, even for that VO's job administrator; and invisible in searches", async () => {
    const before = await snapshot(alicesJob);
    const carol = await m.userToken('carol', 'vo-b');
    const voBAdmin = await m.userToken('boss-b', 'vo-b', ['NormalUser', 'JobAdministrator']);
    refused(await m.api('GET', `/api/jobs/${alicesJob}`, { token: carol }), 403, 'FORBIDDEN', 'read');
    refused(await m.api('POST', `/api/jobs/${alicesJob}/kill`, { token: voBAdmin }), 403, 'FORBIDDEN', 'admin of vo-b');
    refused(await m.api('GET', `/api/jobs/${alicesJob}/output`, { token: voBAdmin }), 403, 'FORBIDDEN', 'output');
    const search = await m.api('POST', '/api/jobs/search', { token: voBAdmin, json: { vo: 'vo-a' } });
    assert.ok(
      search.body.jobs.every((j: { vo: string }) => j.vo === 'vo-b'),
      'a search for vo-a by a vo-b admin is narrowed to vo-b',
    );
    assert.deepEqual(await snapshot(alicesJob), before);
  });

  it("a user touching another user's job: 403; group members see it only when the group shares (JobSharing)", async () => {
    const before = await snapshot(alicesJob);
    const bob = await m.userToken('bob', 'vo-a');
    refused(await m.api('GET', `/api/jobs/${alicesJob}`, { token: bob }), 403, 'FORBIDDEN', 'read');
    refused(await m.api('POST', `/api/jobs/${alicesJob}/kill`, { token: bob }), 403, 'FORBIDDEN', 'kill');
    refused(await m.api('GET', `/api/jobs/${alicesJob}/output`, { token: bob }), 403, 'FORBIDDEN', 'output');
    assert.equal((await m.api('POST', '/api/jobs/search', { token: bob, json: {} })).body.total, 0);
    const otherGroup = await m.userToken('dave', 'vo-a', ['NormalUser', 'JobSharing'], 'vo-a_prod');
    refused(await m.api('GET', `/api/jobs/${alicesJob}`, { token: otherGroup }), 403, 'FORBIDDEN', 'another group');
    assert.deepEqual(await snapshot(alicesJob), before);
    const sharing = await m.userToken('erin', 'vo-a', ['NormalUser', 'JobSharing']);
    assert.equal((await m.api('GET', `/api/jobs/${alicesJob}`, { token: sharing })).status, 200, 'same group, sharing');
    assert.equal((await m.api('POST', '/api/jobs/search', { token: sharing, json: {} })).body.total, 1);
  });

  it('job administrators act within their VO, service administrators everywhere', async () => {
    const voAAdmin = await m.userToken('boss-a', 'vo-a', ['JobAdministrator']);
    assert.equal((await m.api('GET', `/api/jobs/${alicesJob}`, { token: voAAdmin })).status, 200);
    refused(await m.api('GET', `/api/jobs/${carolsJob}`, { token: voAAdmin }), 403, 'FORBIDDEN', 'vo-b job');
    assert.equal((await m.api('POST', '/api/jobs/search', { token: voAAdmin, json: {} })).body.total, 1);
    assert.equal((await m.api('POST', '/api/jobs/search', { json: {} })).body.total, 2, 'the service admin sees all');
    assert.equal((await m.api('GET', `/api/jobs/${carolsJob}`)).status, 200);
  });

  it('a pilot token on user routes: 403, nothing created', async () => {
    const before = await snapshot(alicesJob);
    const pilot = await m.pilotToken('vo-a');
    refused(await m.api('POST', '/api/jobs', { token: pilot, json: { executable: 'x' } }), 403, 'FORBIDDEN', 'submit');
    refused(await m.api('GET', `/api/jobs/${alicesJob}`, { token: pilot }), 403, 'FORBIDDEN', 'read');
    refused(await m.api('POST', `/api/jobs/${alicesJob}/kill`, { token: pilot }), 403, 'FORBIDDEN', 'kill');
    refused(await m.api('POST', '/api/jobs/search', { token: pilot, json: {} }), 403, 'FORBIDDEN', 'search');
    assert.deepEqual(await snapshot(alicesJob), before);
  });

  it('a job token on another job: 403 on its status, heartbeat, output and sandboxes; on user routes: 403', async () => {
    const target = await submitAs(await m.userToken('alice', 'vo-a'));
    const mine = await matchOne('vo-a', 'jt-pilot');
    const other = mine.jobId === target ? alicesJob : target;
    const before = await snapshot(other);
    const token = mine.jobToken;
    const report = { attempt: 1, at: new Date().toISOString(), status: 'Running' };
    refused(await m.api('POST', `/api/jobs/${other}/status`, { token, json: report }), 403, 'FORBIDDEN', 'status');
    refused(
      await m.api('POST', `/api/jobs/${other}/heartbeat`, {
        token,
        json: { attempt: 1, cpuSec: 1, rssMB: 1, wallSec: 1 },
      }),
      403,
      'FORBIDDEN',
      'heartbeat',
    );
    refused(await m.api('GET', `/api/jobs/${other}`, { token }), 403, 'FORBIDDEN', 'read');
    refused(await m.api('GET', `/api/jobs/${other}/output`, { token }), 403, 'FORBIDDEN', 'output');
    // A sandbox of alice's that this job does not use.
    const bytes = Buffer.from('not this job input');
    const ref = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const alice = await m.userToken('alice', 'vo-a');
    const put = await m.api('PUT', `/api/sandboxes/${ref}`, {
      token: alice,
      body: bytes,
      contentType: 'application/gzip',
    });
    assert.equal(put.status, 201);
    refused(await m.api('GET', `/api/sandboxes/${ref}`, { token }), 403, 'FORBIDDEN', 'sandbox of another job');
    assert.equal((await m.api('GET', `/api/sandboxes/${ref}`, { token: alice })).status, 200, 'its owner may');
    refused(await m.api('GET', `/api/jobs/${mine.jobId}`, { token }), 403, 'FORBIDDEN', 'even its own job record');
    refused(await m.api('POST', `/api/jobs/${other}/kill`, { token }), 403, 'FORBIDDEN', 'kill');
    refused(await m.api('POST', '/api/jobs', { token, json: { executable: 'x' } }), 403, 'FORBIDDEN', 'submit');
    refused(
      await m.api('POST', `/api/jobs/${mine.jobId}/status`, { token, json: { ...report, attempt: 2 } }),
      403,
      'FORBIDDEN',
      'another attempt of its own job',
    );
    assert.deepEqual(await snapshot(other), before);
  });

  it('a job token once its attempt ended: 401 TOKEN_ATTEMPT_ENDED', async () => {
    await submitAs(await m.userToken('alice', 'vo-a'));
    const job = await matchOne('vo-a', 'ended-pilot');
    const kill = await m.api('POST', `/api/jobs/${job.jobId}/kill`);
    assert.equal(kill.body.killed, true);
    const before = await snapshot(job.jobId);
    refused(
      await m.api('POST', `/api/jobs/${job.jobId}/status`, {
        token: job.jobToken,
        json: { attempt: job.attempt, at: new Date().toISOString(), status: 'Running' },
      }),
      401,
      'TOKEN_ATTEMPT_ENDED',
      'status after kill',
    );
    refused(
      await m.api('PUT', `/api/sandboxes/sha256:${'a'.repeat(64)}`, {
        token: job.jobToken,
        body: Buffer.from('x'),
        contentType: 'application/gzip',
      }),
      401,
      'TOKEN_ATTEMPT_ENDED',
      'upload after kill',
    );
    assert.deepEqual(await snapshot(job.jobId), before);
  });

  it('a revoked key: every token it signed is 401 TOKEN_REVOKED on the next request; new tokens work', async () => {
    const alice = await m.userToken('alice', 'vo-a');
    assert.equal((await m.api('GET', `/api/jobs/${alicesJob}`, { token: alice })).status, 200);
    const before = await snapshot(alicesJob);
    // Another process (the CLI) revokes the signing key on the data directory.
    const cliRing = await KeyRing.open({
      dataDir: m.dataDir,
      clock: systemClock,
      maxTokenTtlSec: DEFAULT_MAX_TOKEN_TTL_SEC,
    });
    const kid = cliRing.signer().kid;
    await cliRing.revoke(kid, 'test');
    refused(await m.api('GET', `/api/jobs/${alicesJob}`, { token: alice }), 401, 'TOKEN_REVOKED', 'revoked key');
    refused(await m.api('POST', `/api/jobs/${alicesJob}/kill`, { token: alice }), 401, 'TOKEN_REVOKED', 'kill');
    const jwks = (await m.api('GET', '/.well-known/jwks.json', { token: null })).body;
    assert.ok(!jwks.keys.some((k: { kid: string }) => k.kid === kid), 'the revoked key is no longer published');
    const fresh = await m.userToken('alice', 'vo-a');
    assert.equal((await m.api('GET', `/api/jobs/${alicesJob}`, { token: fresh })).status, 200, 'new signer');
    await m.matcher.maintain(); // rewrites admin.token, signed by the revoked key
    const { readFile } = await import('node:fs/promises');
    const admin = (await readFile(m.matcher.adminTokenPath, 'utf8')).trim();
    assert.notEqual(admin, m.adminToken, 'admin.token was renewed');
    m.adminToken = admin;
    assert.deepEqual(await snapshot(alicesJob), before);
  });

  it('a revoked token id: 401 TOKEN_REVOKED on the next request, other tokens unaffected', async () => {
    const issued = await m.matcher.tokens.issueWithId({
      kind: 'user',
      subject: 'alice',
      vo: 'vo-a',
      group: 'vo-a_user',
      properties: ['NormalUser'],
      ttlSec: 600,
    });
    assert.equal((await m.api('GET', `/api/jobs/${alicesJob}`, { token: issued.token })).status, 200);
    const before = await snapshot(alicesJob);
    const cliStore = openSqliteCredentialStore({ path: path.join(m.dataDir, 'pilothouse.sqlite') });
    await cliStore.revokeToken({
      tokenId: issued.tokenId,
      expiresAtMs: issued.expiresAtMs,
      reason: 'test',
      revokedBy: 'test',
      atMs: Date.now(),
    });
    await cliStore.close();
    refused(await m.api('GET', `/api/jobs/${alicesJob}`, { token: issued.token }), 401, 'TOKEN_REVOKED', 'revoked');
    const other = await m.userToken('alice', 'vo-a');
    assert.equal((await m.api('GET', `/api/jobs/${alicesJob}`, { token: other })).status, 200);
    assert.deepEqual(await snapshot(alicesJob), before);
  });

  it('a pilot session whose token is revoked is closed at its next message', async () => {
    const issued = await m.matcher.tokens.issueWithId({
      kind: 'pilot',
      subject: 'pilots.vo-a',
      vo: 'vo-a',
      group: 'vo-a_pilot',
      properties: ['GenericPilot'],
      site: '*',
      ttlSec: 600,
    });
    const pilot = await RawPilot.connect(m.url, issued.token, { stamp: 'to-revoke' });
    pilots.push(pilot);
    await m.api('POST', '/api/auth/revoke', { json: { tokenId: issued.tokenId } });
    const closed = new Promise<number>((resolve) => pilot.ws.once('close', (code) => resolve(code)));
    pilot.send({ type: 'offer', offerId: 'late', matchSeq: 0, resources: resources() });
    assert.equal((await pilot.next('error')).code, 'TOKEN_REVOKED');
    assert.equal(await closed, 1008);
  });
});
