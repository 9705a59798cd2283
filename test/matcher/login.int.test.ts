/**
 * User login against a real OpenID Connect provider (oidc-provider, run by this test as the
 * community's IdP) and a real matcher on port 0, over HTTP as the CLI and the web application speak
 * it: the device flow (RFC 8628) with its pending / slow_down / denied / expired answers, the
 * authorization code flow with PKCE, rotating refresh tokens whose reuse revokes the sign-in, sign-out,
 * group selection from the IdP's groups, and forged or replayed states, codes and verifiers refused
 * with the codes the RFCs name. The matcher's clock is moved forward where the RFC asks a client to
 * wait (poll intervals, expiry); the IdP keeps real time.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { TestMatcher } from '../helpers/matcher.ts';
import { browse, type TestIdp } from '../helpers/oidc-idp.ts';
import { startLoginRig, type LoginRig } from '../helpers/login-rig.ts';

let idp: TestIdp;
let m: TestMatcher;
let rig: LoginRig;
let offsetMs = 0;
const clock = { nowMs: () => Date.now() + offsetMs };

before(async () => {
  rig = await startLoginRig({ clock, login: { pollIntervalSec: 2, deviceCodeTtlSec: 300 } });
  ({ idp, m } = rig);
});
after(() => rig.close());

async function form(urlPath: string, fields: Record<string, string>) {
  return m.api('POST', urlPath, {
    token: null,
    body: new URLSearchParams(fields).toString(),
    contentType: 'application/x-www-form-urlencoded',
  });
}

const DEVICE = 'urn:ietf:params:oauth:grant-type:device_code';

async function startDevice(scope = 'vo:vo-a') {
  const started = await form('/api/auth/device', { client_id: 'pilothouse-cli', scope });
  assert.equal(started.status, 200, JSON.stringify(started.body));
  return started.body as {
    device_code: string;
    user_code: string;
    verification_uri_complete: string;
    interval: number;
  };
}

const poll = (deviceCode: string) =>
  form('/api/auth/token', { grant_type: DEVICE, device_code: deviceCode, client_id: 'pilothouse-cli' });

async function whoAmI(token: string) {
  return m.api('GET', '/api/auth/userinfo', { token });
}

describe('device flow (pilothouse login)', () => {
  it('pending, slow_down, the user signs in at the IdP, tokens once; the access token works', async () => {
    const device = await startDevice();
    assert.match(device.user_code, /^[B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4}$/);
    assert.equal(device.interval, 2);
    const first = await poll(device.device_code);
    assert.deepEqual([first.status, first.body.error], [400, 'authorization_pending']);
    const tooSoon = await poll(device.device_code);
    assert.deepEqual([tooSoon.status, tooSoon.body.error], [400, 'slow_down']);

    const signedIn = await browse(device.verification_uri_complete, { login: 'alice' });
    assert.equal(signedIn.status, 200, signedIn.body);
    assert.match(signedIn.body, /Signed in as <strong>alice<\/strong> \(VO vo-a, group vo-a_user\)/);
    assert.ok(
      signedIn.visited.some((url) => url.startsWith(idp.issuer)),
      'the browser went through the IdP',
    );

    offsetMs += 8_000; // past the interval grown by slow_down (2 + 5 s)
    const granted = await poll(device.device_code);
    assert.equal(granted.status, 200, JSON.stringify(granted.body));
    assert.equal(granted.headers.get('cache-control'), 'no-store');
    assert.equal(granted.body.token_type, 'Bearer');
    assert.ok(granted.body.expires_in > 0 && granted.body.expires_in <= 1200);
    const me = await whoAmI(granted.body.access_token);
    assert.equal(me.status, 200);
    assert.deepEqual(
      [me.body.user, me.body.vo, me.body.group, me.body.properties],
      ['alice', 'vo-a', 'vo-a_user', ['NormalUser']],
    );
    offsetMs += 3_000;
    const again = await poll(device.device_code);
    assert.deepEqual([again.status, again.body.error], [400, 'invalid_grant'], 'tokens are given once');
  });

  it('a group asked for in the scope is granted to a member, refused to anyone else', async () => {
    const forCarol = await startDevice('vo:vo-a group:vo-a_prod');
    await browse(forCarol.verification_uri_complete, { login: 'carol' });
    offsetMs += 3_000;
    const granted = await poll(forCarol.device_code);
    const me = await whoAmI(granted.body.access_token);
    assert.deepEqual([me.body.group, me.body.properties], ['vo-a_prod', ['NormalUser', 'JobAdministrator']]);

    const forAlice = await startDevice('vo:vo-a group:vo-a_prod');
    const refused = await browse(forAlice.verification_uri_complete, { login: 'alice' });
    assert.equal(refused.status, 400);
    assert.match(refused.body, /alice is not in group vo-a_prod/);
    assert.match(refused.body, /LOGIN_REFUSED/);
    offsetMs += 3_000;
    assert.equal((await poll(forAlice.device_code)).body.error, 'access_denied', 'the CLI stops waiting at once');
    const mallory = await startDevice();
    const unmapped = await browse(mallory.verification_uri_complete, { login: 'mallory' });
    assert.equal(unmapped.status, 400);
    assert.match(unmapped.body, /no group mapped to VO vo-a/);
  });

  it('declined at the IdP → access_denied; unknown device code → invalid_grant; expired → expired_token; unknown user code refused', async () => {
    const declined = await startDevice();
    const page = await browse(declined.verification_uri_complete, { login: 'alice', decline: true });
    assert.match(page.body, /Sign-in declined/);
    offsetMs += 3_000;
    assert.equal((await poll(declined.device_code)).body.error, 'access_denied');

    assert.equal((await poll('phd_not-a-real-code')).body.error, 'invalid_grant');
    const late = await startDevice();
    offsetMs += 301_000;
    assert.equal((await poll(late.device_code)).body.error, 'expired_token');
    const tooLate = await browse(late.verification_uri_complete, { login: 'alice' });
    assert.equal(tooLate.status, 400);
    assert.match(tooLate.body, /unknown, expired or already used/);

    const wrongClient = await form('/api/auth/token', {
      grant_type: DEVICE,
      device_code: late.device_code,
      client_id: 'pilothouse-web',
    });
    assert.deepEqual([wrongClient.status, wrongClient.body.error], [400, 'unauthorized_client']);
    const unknownClient = await form('/api/auth/device', { client_id: 'evil' });
    assert.deepEqual([unknownClient.status, unknownClient.body.error], [401, 'invalid_client']);
    const badScope = await form('/api/auth/device', { client_id: 'pilothouse-cli', scope: 'admin' });
    assert.equal(badScope.body.error, 'invalid_scope');
    const notForm = await m.api('POST', '/api/auth/token', { token: null, json: { grant_type: DEVICE } });
    assert.deepEqual([notForm.status, notForm.body.error], [400, 'invalid_request']);
    assert.equal((await form('/api/auth/token', { grant_type: 'password' })).body.error, 'unsupported_grant_type');
  });
});

async function deviceTokens(login: string) {
  const device = await startDevice();
  await browse(device.verification_uri_complete, { login });
  offsetMs += 3_000;
  const granted = await poll(device.device_code);
  assert.equal(granted.status, 200);
  return granted.body as { access_token: string; refresh_token: string };
}

const refresh = (token: string, clientId = 'pilothouse-cli') =>
  form('/api/auth/token', { grant_type: 'refresh_token', refresh_token: token, client_id: clientId });

describe('refresh tokens', () => {
  it('rotate at each use; a reused one is refused and revokes the whole sign-in', async () => {
    const first = await deviceTokens('alice');
    const second = await refresh(first.refresh_token);
    assert.equal(second.status, 200);
    assert.notEqual(second.body.refresh_token, first.refresh_token);
    assert.equal((await whoAmI(second.body.access_token)).status, 200);

    const reused = await refresh(first.refresh_token);
    assert.deepEqual([reused.status, reused.body.error], [400, 'invalid_grant']);
    assert.match(reused.body.error_description, /already used/);
    const revoked = await whoAmI(second.body.access_token);
    assert.deepEqual([revoked.status, revoked.body.error.code], [401, 'TOKEN_REVOKED']);
    assert.equal((await whoAmI(first.access_token)).body.error.code, 'TOKEN_REVOKED');
    assert.equal((await refresh(second.body.refresh_token)).body.error, 'invalid_grant', 'the family is spent');
  });

  it('sign-out (revocation) ends the sign-in; another client cannot use the refresh token', async () => {
    const tokens = await deviceTokens('carol');
    assert.equal((await refresh(tokens.refresh_token, 'pilothouse-web')).body.error, 'invalid_grant');
    const other = await deviceTokens('carol');
    const out = await form('/api/auth/token/revoke', { token: other.refresh_token, client_id: 'pilothouse-cli' });
    assert.equal(out.status, 200);
    assert.equal((await whoAmI(other.access_token)).body.error.code, 'TOKEN_REVOKED');
    assert.equal((await refresh(other.refresh_token)).body.error, 'invalid_grant');
    assert.equal((await form('/api/auth/token/revoke', { token: 'garbage' })).status, 200, 'RFC 7009: always 200');
  });
});

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

describe('authorization code flow with PKCE (the web application)', () => {
  const redirectUri = () => `${m.url}/ui/`;
  const authorizeUrl = (challenge: string, state: string, extra: Record<string, string> = {}) =>
    `${m.url}/api/auth/authorize?${new URLSearchParams({
      response_type: 'code',
      client_id: 'pilothouse-web',
      redirect_uri: redirectUri(),
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      scope: 'vo:vo-a',
      ...extra,
    })}`;
  const toApp = (url: URL) => url.origin === new URL(m.url).origin && url.pathname.startsWith('/ui/');
  const exchange = (code: string, verifier: string, uri = redirectUri()) =>
    form('/api/auth/token', {
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: uri,
      client_id: 'pilothouse-web',
    });

  it('the browser comes back with a code and its state; the code and the right verifier give tokens, once', async () => {
    const { verifier, challenge } = pkce();
    const trip = await browse(authorizeUrl(challenge, 'state-123'), { login: 'alice', stopAt: toApp });
    const back = new URL(trip.location as string);
    assert.equal(back.searchParams.get('state'), 'state-123');
    const code = back.searchParams.get('code') as string;
    assert.match(code, /^phc_/);
    const tokens = await exchange(code, verifier);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.equal((await whoAmI(tokens.body.access_token)).body.user, 'alice');
    assert.equal((await exchange(code, verifier)).body.error, 'invalid_grant', 'a code is used once');
    const rotated = await refresh(tokens.body.refresh_token, 'pilothouse-web');
    assert.equal(rotated.status, 200);
  });

  it('a wrong PKCE verifier or redirect_uri is invalid_grant (and spends the code)', async () => {
    const { verifier, challenge } = pkce();
    const trip = await browse(authorizeUrl(challenge, 's'), { login: 'alice', stopAt: toApp });
    const code = new URL(trip.location as string).searchParams.get('code') as string;
    const wrong = await exchange(code, pkce().verifier);
    assert.deepEqual([wrong.status, wrong.body.error], [400, 'invalid_grant']);
    assert.match(wrong.body.error_description, /code_verifier/);
    assert.equal((await exchange(code, verifier)).body.error, 'invalid_grant', 'spent by the failed attempt');

    const other = pkce();
    const trip2 = await browse(authorizeUrl(other.challenge, 's'), { login: 'alice', stopAt: toApp });
    const code2 = new URL(trip2.location as string).searchParams.get('code') as string;
    assert.equal((await exchange(code2, other.verifier, `${m.url}/ui/elsewhere`)).body.error, 'invalid_grant');
  });

  it('a state that outlived the sign-in window (signInTtlSec) is refused at the callback, with nothing issued', async () => {
    const { challenge } = pkce();
    const atCallback = (url: URL) => url.pathname === '/api/auth/callback';
    const trip = await browse(authorizeUrl(challenge, 'late'), { login: 'alice', stopAt: atCallback });
    assert.ok(trip.location && atCallback(new URL(trip.location)), 'the IdP sent the browser back to the callback');
    offsetMs += 601_000; // the default sign-in window is 600 s
    try {
      const late = await fetch(trip.location as string, { redirect: 'manual' });
      assert.equal(late.status, 400);
      assert.match(await late.text(), /LOGIN_REFUSED/);
    } finally {
      offsetMs -= 601_000;
    }
    // Back inside the window, the same state is spent: a refused callback is not retried.
    const again = await fetch(trip.location as string, { redirect: 'manual' });
    assert.equal(again.status, 400);
  });

  it('a forged or replayed state at the callback is refused; bad authorize requests never reach the IdP', async () => {
    const forged = await m.api('GET', '/api/auth/callback?code=abc&state=forged', { token: null });
    assert.equal(forged.status, 400);
    assert.match(String(forged.body), /LOGIN_REFUSED/);
    const { challenge } = pkce();
    const trip = await browse(authorizeUrl(challenge, 's'), { login: 'alice', stopAt: toApp });
    const callback = trip.visited.find((url) => url.startsWith(`${m.url}/api/auth/callback`)) as string;
    const replay = await fetch(callback, { redirect: 'manual' });
    assert.equal(replay.status, 400, 'a state is used once');

    const elsewhere = await fetch(authorizeUrl(challenge, 's', { redirect_uri: 'https://evil.example/cb' }), {
      redirect: 'manual',
    });
    assert.equal(elsewhere.status, 400, 'never redirected to another origin');
    assert.match(await elsewhere.text(), /redirect_uri must be on this matcher/);
    const noPkce = await fetch(authorizeUrl('', 'st'), { redirect: 'manual' });
    assert.equal(noPkce.status, 302);
    const location = new URL(noPkce.headers.get('location') as string);
    assert.equal(location.origin + location.pathname, redirectUri());
    assert.deepEqual(
      [location.searchParams.get('error'), location.searchParams.get('state')],
      ['invalid_request', 'st'],
    );
    const plain = await fetch(authorizeUrl(challenge, 'st', { code_challenge_method: 'plain' }), {
      redirect: 'manual',
    });
    assert.equal(new URL(plain.headers.get('location') as string).searchParams.get('error'), 'invalid_request');
    const metadata = await m.api('GET', '/.well-known/oauth-authorization-server', { token: null });
    assert.equal(metadata.body.device_authorization_endpoint, `${m.url}/api/auth/device`);
    assert.deepEqual(metadata.body.code_challenge_methods_supported, ['S256']);
  });
});

describe('guessing is bounded per address', () => {
  it('after 20 failed guesses in a minute, the token endpoint and the code page answer 429 until the window ends', async () => {
    offsetMs += 120_000; // a window of its own, whatever the tests before it got wrong
    let answered = 0;
    for (; answered < 40; answered += 1) {
      const guess = await poll(`no-such-device-code-${answered}`);
      if (guess.status === 429) break;
      assert.equal(guess.body.error, 'invalid_grant');
    }
    assert.ok(answered >= 1 && answered <= 20, `refused after ${answered} failed guesses`);
    const limited = await poll('another-guess');
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error, 'temporarily_unavailable');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    const page = await fetch(`${m.url}/api/auth/device?user_code=BCDF-GHJK`, { redirect: 'manual' });
    assert.equal(page.status, 429);
    assert.match(await page.text(), /RATE_LIMITED/);
    // Once the window has ended, this address is served again.
    offsetMs += 61_000;
    const started = await startDevice();
    const pending = await poll(started.device_code);
    assert.equal(pending.body.error, 'authorization_pending');
  });
});
