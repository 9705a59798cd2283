/**
 * `pilothouse login` / `whoami` / `logout` as a user runs them (dist/cli.mjs in child processes)
 * against a real matcher whose users sign in at a real OIDC provider run by the test; the test plays
 * the user's browser with the URL the CLI prints. Then the saved sign-in is used by other commands,
 * renewed when its access token has expired (once, even when several commands need it at the same
 * time), revoked when a spent refresh token is replayed, and ended by logout.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CLI, runCli } from '../helpers/cli-process.ts';
import { startLoginRig, type LoginRig } from '../helpers/login-rig.ts';
import { browse } from '../helpers/oidc-idp.ts';
import { makeTestCa, type TestCa } from '../helpers/test-ca.ts';
import { Agent } from 'undici';

let rig: LoginRig;
let env: Record<string, string>;
let credentials: string;

before(async () => {
  rig = await startLoginRig({ login: { pollIntervalSec: 1 } });
  credentials = path.join(rig.work, 'home', 'credentials.json');
  env = { PILOTHOUSE_MATCHER: rig.m.url, PILOTHOUSE_CREDENTIALS_FILE: credentials };
});
after(() => rig.close());

/** Runs `pilothouse login ARGS`, signs in as `user` at the URL it prints, and waits for it to end. */
async function login(
  user: string,
  args: string[] = [],
  target: { env: Record<string, string>; fetchInit?: RequestInit } = { env },
) {
  const child = spawn(process.execPath, [CLI, 'login', ...args], {
    env: { PATH: process.env.PATH ?? '', ...target.env },
  });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
      const found = /open (http\S+user_code=\S+)/.exec(stderr)?.[1];
      if (found) resolve(found);
    });
    child.once('exit', () => reject(new Error(`login ended before printing a URL: ${stderr}`)));
  });
  assert.match(stderr, /type the code [B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4}/);
  const page = await browse(url, { login: user, ...(target.fetchInit && { fetchInit: target.fetchInit }) });
  const [code] = (await once(child, 'exit')) as [number];
  return { code, stdout, stderr, page };
}

type Saved = { logins: Record<string, { accessToken: string; refreshToken: string; accessExpiresAtMs: number }> };
const saved = async (): Promise<Saved> => JSON.parse(await readFile(credentials, 'utf8')) as Saved;

async function expireAccessToken(): Promise<void> {
  const content = await saved();
  for (const entry of Object.values(content.logins)) entry.accessExpiresAtMs = Date.now() - 1;
  await writeFile(credentials, JSON.stringify(content));
}

describe('pilothouse login', () => {
  it('--help works on login, logout and whoami', async () => {
    for (const command of ['login', 'logout', 'whoami']) {
      const result = await runCli([command, '--help']);
      assert.equal(result.code, 0);
      assert.match(result.stdout, /Usage:/);
    }
  });

  it('signs in through the device flow; other commands then use the saved tokens', async () => {
    const result = await login('carol', ['--group', 'vo-a_prod']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /signed in as carol \(VO vo-a, group vo-a_prod\)/);
    assert.match(result.page.body, /Signed in as <strong>carol<\/strong>/);
    const stat = await import('node:fs/promises').then((fs) => fs.stat(credentials));
    assert.equal(stat.mode & 0o777, 0o600, 'the credentials file is private');

    const who = await runCli(['whoami', '--json'], env);
    assert.equal(who.code, 0, who.stderr);
    assert.deepEqual(JSON.parse(who.stdout), {
      ...JSON.parse(who.stdout),
      user: 'carol',
      vo: 'vo-a',
      group: 'vo-a_prod',
      properties: ['NormalUser', 'JobAdministrator'],
    });
    const jobFile = path.join(rig.work, 'job.json');
    await writeFile(jobFile, JSON.stringify({ executable: 'true', requirements: { sites: ['Nowhere'] } }));
    const submitted = await runCli(['submit', jobFile, '--json'], env);
    assert.equal(submitted.code, 0, submitted.stderr);
    const [jobId] = JSON.parse(submitted.stdout).jobIds as number[];
    assert.equal((await rig.m.api('GET', `/api/jobs/${jobId}`)).body.owner, 'carol');
    // A job administrator's view, through the saved sign-in.
    assert.equal((await runCli(['tq', '--json'], env)).code, 0);
  });

  it('an expired access token is renewed once even when four commands need it at the same time', async () => {
    const before = (await saved()).logins[rig.m.url] as Saved['logins'][string];
    await expireAccessToken();
    const results = await Promise.all([1, 2, 3, 4].map(() => runCli(['whoami'], env)));
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    const after = (await saved()).logins[rig.m.url] as Saved['logins'][string];
    assert.notEqual(after.refreshToken, before.refreshToken, 'rotated');
    assert.ok(after.accessExpiresAtMs > Date.now());
    // Had two commands refreshed with the same token, the reuse would have revoked the sign-in.
    assert.equal((await runCli(['whoami'], env)).code, 0);

    // A leaked, already spent refresh token replayed by someone else revokes the sign-in.
    const replay = await rig.m.api('POST', '/api/auth/token', {
      token: null,
      contentType: 'application/x-www-form-urlencoded',
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: before.refreshToken,
        client_id: 'pilothouse-cli',
      }).toString(),
    });
    assert.equal(replay.body.error, 'invalid_grant');
    const refused = await runCli(['whoami'], env);
    assert.equal(refused.code, 3);
    assert.match(refused.stderr, /TOKEN_REVOKED/);
  });

  it('logout revokes the sign-in and forgets it; a refused login exits 3 and saves nothing', async () => {
    assert.equal((await login('alice')).code, 0);
    const token = (await saved()).logins[rig.m.url]?.accessToken as string;
    const out = await runCli(['logout'], env);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^signed out$/m);
    assert.equal((await rig.m.api('GET', '/api/auth/userinfo', { token })).body.error.code, 'TOKEN_REVOKED');
    const after = await runCli(['whoami'], env);
    assert.equal(after.code, 3);
    assert.match(after.stderr, /run pilothouse login/);
    assert.equal((await runCli(['logout'], env)).stdout.trim(), 'not signed in at this matcher');

    const refused = await login('alice', ['--group', 'vo-a_prod']);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /LOGIN_REFUSED/);
    assert.equal((await saved()).logins[rig.m.url], undefined);
    const unreachable = await runCli(['login', '--matcher', 'http://127.0.0.1:9'], env);
    assert.equal(unreachable.code, 5, unreachable.stderr);
  });
});

describe('pilothouse login at an https matcher under a private CA', () => {
  let tlsRig: LoginRig;
  let ca: TestCa;
  let tlsEnv: Record<string, string>;
  before(async () => {
    ca = await makeTestCa();
    tlsRig = await startLoginRig({ login: { pollIntervalSec: 1 }, tls: ca });
    tlsEnv = {
      PILOTHOUSE_MATCHER: tlsRig.m.url,
      PILOTHOUSE_CREDENTIALS_FILE: path.join(tlsRig.work, 'home', 'credentials.json'),
    };
  });
  after(() => tlsRig?.close());

  it('signs in with --ca-file, then renews and signs out through the same CA; without it, refuses to start', async () => {
    assert.match(tlsRig.m.url, /^https:/);
    const refused = await runCli(['login'], tlsEnv);
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(refused.stderr, /could not be reached.*certificate/i);

    const fetchInit = { dispatcher: new Agent({ connect: { ca: ca.caPem } }) } as unknown as RequestInit;
    const signedIn = await login('alice', ['--ca-file', ca.caFile], { env: tlsEnv, fetchInit });
    assert.equal(signedIn.code, 0, signedIn.stderr);
    const withCa = { ...tlsEnv, PILOTHOUSE_CA_FILE: ca.caFile };
    const credentialsFile = tlsEnv.PILOTHOUSE_CREDENTIALS_FILE as string;
    const content = JSON.parse(await readFile(credentialsFile, 'utf8')) as Saved;
    for (const entry of Object.values(content.logins)) entry.accessExpiresAtMs = Date.now() - 1;
    await writeFile(credentialsFile, JSON.stringify(content));
    const renewed = await runCli(['whoami', '--json'], withCa); // the refresh goes through the CA too
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.equal(JSON.parse(renewed.stdout).user, 'alice');
    const out = await runCli(['logout', '--json'], withCa);
    assert.deepEqual(JSON.parse(out.stdout), { signedOut: true, revoked: true });
  });
});
