/**
 * The security features as operators and pilots use them, with dist/cli.mjs and dist/pilot.mjs as
 * real child processes:
 *  - `pilothouse token rotate-key|revoke|keys` on the data directory of a RUNNING matcher take effect
 *    on its next request;
 *  - `pilothouse pilots secret` mints a secret that a real pilot exchanges (--secret-file) to run a job;
 *  - over TLS with a CA made by the test: the CLI (--ca-file, PILOTHOUSE_CA_FILE) and a pilot
 *    (--ca-file, wss) talk to an https matcher; without the CA they refuse to.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Agent } from 'undici';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { spawnPilot } from '../helpers/pilot-process.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';
import { makeTestCa, type TestCa } from '../helpers/test-ca.ts';
import { CLI, runCli } from '../helpers/cli-process.ts';
import { waitFor } from '../helpers/wait.ts';

const cli = runCli;

async function waitDone(m: TestMatcher, jobId: number) {
  return waitFor(async () => {
    const job = (await m.api('GET', `/api/jobs/${jobId}`)).body;
    return ['Done', 'Failed'].includes(job.status) ? job : undefined;
  }, `job ${jobId} to finish`);
}

describe('security, end to end', () => {
  let m: TestMatcher;
  let work: string;

  before(async () => {
    m = await startTestMatcher();
    work = await mkdtemp(path.join(os.tmpdir(), 'ph-sec-'));
  });
  after(() => m.close());

  it('token revoke --token-file / --token-id on the data directory: refused on the next request', async () => {
    const issued = await cli(['token', 'issue', '--data-dir', m.dataDir, '--vo', 'vo-a', '--user', 'alice']);
    assert.equal(issued.code, 0, issued.stderr);
    const token = issued.stdout.trim();
    const claims = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString());
    assert.ok(claims.exp - claims.iat <= 3600, 'user tokens are short-lived by default');
    assert.equal((await m.api('GET', '/api/auth/userinfo', { token })).status, 200);
    const file = path.join(work, 'alice.token');
    await writeFile(file, token);
    const revoked = await cli(['token', 'revoke', '--data-dir', m.dataDir, '--token-file', file]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const refused = await m.api('GET', '/api/auth/userinfo', { token });
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error.code, 'TOKEN_REVOKED');

    const other = (
      await cli(['token', 'issue', '--data-dir', m.dataDir, '--vo', 'vo-a', '--user', 'bob'])
    ).stdout.trim();
    const jti = JSON.parse(Buffer.from(other.split('.')[1] as string, 'base64url').toString()).jti;
    assert.equal((await cli(['token', 'revoke', '--data-dir', m.dataDir, '--token-id', jti])).code, 0);
    assert.equal((await m.api('GET', '/api/auth/userinfo', { token: other })).body.error.code, 'TOKEN_REVOKED');
    assert.equal((await cli(['token', 'revoke', '--data-dir', m.dataDir])).code, 2, 'nothing to revoke: usage');
  });

  it('token rotate-key then revoke --key: old tokens verify after the rotation, and die with the key', async () => {
    const old = await m.userToken('alice', 'vo-a');
    const before = JSON.parse((await cli(['token', 'keys', '--data-dir', m.dataDir, '--json'])).stdout).keys;
    const oldKid = before.find((k: { status: string }) => k.status === 'signing').kid;
    const rotated = await cli(['token', 'rotate-key', '--data-dir', m.dataDir, '--json']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const { signing, keys } = JSON.parse(rotated.stdout);
    assert.notEqual(signing.kid, oldKid);
    const retiring = keys.find((k: { kid: string }) => k.kid === oldKid);
    assert.equal(retiring.status, 'retiring');
    assert.ok(retiring.retireAtMs > Date.now(), 'a retire time is recorded');

    assert.equal((await m.api('GET', '/api/auth/userinfo', { token: old })).status, 200, 'still verifies');
    const fresh = await m.userToken('alice', 'vo-a');
    const freshKid = JSON.parse(Buffer.from(fresh.split('.')[0] as string, 'base64url').toString()).kid;
    assert.equal(freshKid, signing.kid, 'the running matcher signs with the key the CLI made');
    const jwks = (await m.api('GET', '/.well-known/jwks.json', { token: null })).body.keys.map(
      (k: { kid: string }) => k.kid,
    );
    assert.deepEqual(jwks.sort(), [oldKid, signing.kid].sort());

    const revoked = await cli(['token', 'revoke', '--data-dir', m.dataDir, '--key', oldKid]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const refused = await m.api('GET', '/api/auth/userinfo', { token: old });
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error.code, 'TOKEN_REVOKED');
    assert.equal((await m.api('GET', '/api/auth/userinfo', { token: fresh })).status, 200);
    // The admin token was signed by the old key: the maintenance tick rewrites admin.token.
    await m.matcher.maintain();
    m.adminToken = (await readFile(m.matcher.adminTokenPath, 'utf8')).trim();
    assert.equal((await m.api('POST', '/api/jobs/search', { json: {} })).status, 200);
  });

  it('pilots secret mints a one-time secret; a real pilot exchanges it (--secret-file) and runs a job', async () => {
    const adminFile = path.join(work, 'admin.token');
    await writeFile(adminFile, m.adminToken);
    const env = { PILOTHOUSE_MATCHER: m.url, PILOTHOUSE_TOKEN_FILE: adminFile };
    const minted = await cli(
      ['pilots', 'secret', '--vo', 'local', '--site', 'Site.S', '--stamp', 'secret-pilot-1'],
      env,
    );
    assert.equal(minted.code, 0, minted.stderr);
    const secret = minted.stdout.trim();
    assert.match(secret, /^phps_/);
    const [jobId] = (await m.api('POST', '/api/jobs', { json: { executable: '/bin/echo', arguments: ['via secret'] } }))
      .body.jobIds;
    const pilot = await spawnPilot({
      matcherUrl: m.url,
      token: secret,
      secret: true,
      args: ['--stamp', 'secret-pilot-1', '--site', 'Site.S', '--idle-timeout-sec', '1'],
    });
    const job = await waitDone(m, jobId);
    assert.equal(job.status, 'Done', pilot.log());
    assert.equal(job.pilotId, 'secret-pilot-1');
    assert.equal(await pilot.exited, 0, pilot.log());

    // The same secret again: refused, and the pilot exits 3 (authentication).
    const again = await spawnPilot({
      matcherUrl: m.url,
      token: secret,
      secret: true,
      args: ['--stamp', 'secret-pilot-1'],
    });
    assert.equal(await again.exited, 3, again.log());
    assert.match(again.log(), /PILOT_SECRET_SPENT/);
  });

  describe('over TLS with a CA made by the test', () => {
    let ca: TestCa;
    let tls: TestMatcher;

    before(async () => {
      ca = await makeTestCa();
      tls = await startTestMatcher({
        raw: { tlsCert: ca.certFile, tlsKey: ca.keyFile },
        fetchInit: { dispatcher: new Agent({ connect: { ca: ca.caPem } }) },
      });
    });
    after(() => tls.close());

    it('the CLI verifies the matcher with --ca-file or PILOTHOUSE_CA_FILE, and refuses without', async () => {
      assert.match(tls.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const tokenFile = path.join(work, 'tls-admin.token');
      await writeFile(tokenFile, tls.adminToken);
      const env = { PILOTHOUSE_MATCHER: tls.url, PILOTHOUSE_TOKEN_FILE: tokenFile };
      const viaFlag = await cli(['jobs', '--json', '--ca-file', ca.caFile], env);
      assert.equal(viaFlag.code, 0, viaFlag.stderr);
      const viaEnv = await cli(['jobs', '--json'], { ...env, PILOTHOUSE_CA_FILE: ca.caFile });
      assert.equal(viaEnv.code, 0, viaEnv.stderr);
      const untrusted = await cli(['jobs'], env);
      assert.equal(untrusted.code, 5, 'no CA: the certificate is not trusted');
      assert.match(untrusted.stderr, /MATCHER_UNREACHABLE/);
      const wrongCa = await cli(['jobs', '--ca-file', ca.otherCaFile], env);
      assert.equal(wrongCa.code, 5, 'another CA: refused too');
    });

    it('a real pilot runs a job over https/wss with --ca-file; a raw WebSocket without the CA fails', async () => {
      const [jobId] = (await tls.api('POST', '/api/jobs', { json: { executable: '/bin/echo', arguments: ['tls'] } }))
        .body.jobIds;
      const pilot = await spawnPilot({
        matcherUrl: tls.url,
        token: await tls.pilotToken('local'),
        args: ['--ca-file', ca.caFile, '--idle-timeout-sec', '1'],
      });
      const job = await waitFor(async () => {
        const body = (await tls.api('GET', `/api/jobs/${jobId}`)).body;
        return ['Done', 'Failed'].includes(body.status) ? body : undefined;
      }, 'the TLS job');
      assert.equal(job.status, 'Done', pilot.log());
      assert.ok(job.outputSandbox, 'the output sandbox went up over https');
      assert.equal(await pilot.exited, 0, pilot.log());

      const trusted = await RawPilot.connect(
        tls.url,
        await tls.pilotToken('local'),
        { stamp: 'raw-tls' },
        { ca: ca.caPem },
      );
      trusted.send({ type: 'offer', offerId: 'o', matchSeq: 0, resources: resources() });
      assert.equal((await trusted.next('parked')).offerId, 'o');
      await trusted.close();
      const untrusted = new RawPilot(tls.url, await tls.pilotToken('local'));
      const failure = await new Promise<Error>((resolve) => untrusted.ws.once('error', resolve));
      assert.match(failure.message, /self-signed|unable to verify|certificate/i);
    });
  });
});
