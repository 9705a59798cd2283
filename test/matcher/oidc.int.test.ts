/**
 * An external OIDC issuer trusted through its JWKS URL: the test plays the IdP (its own RS256 key,
 * its JWKS served over HTTP on port 0), configures the matcher with `<dataDir>/oidc.json`, and checks
 * that the claims map to VO/group/user/properties, and that every bad token is refused with its code.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWTPayload } from 'jose';
import WebSocket from 'ws';
import { startTestMatcher, type ApiResponse, type TestMatcher } from '../helpers/matcher.ts';

const ISSUER = 'https://iam.vo-x.example.org/';
const DOWN_ISSUER = 'https://iam.down.example.org/';
const AUDIENCE = 'pilothouse-test';

describe('external OIDC issuer', () => {
  let idp: Server;
  let jwksRequests = 0;
  let signingKey: CryptoKey;
  let strangerKey: CryptoKey;
  let m: TestMatcher;

  const idpToken = async (claims: JWTPayload, options: { key?: CryptoKey; kid?: string; ttlSec?: number } = {}) => {
    const nowSec = Math.floor(Date.now() / 1000);
    return new SignJWT({ groups: ['/vo-x'], preferred_username: 'xavier', ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: options.kid ?? 'idp-key-1' })
      .setIssuer((claims.iss as string | undefined) ?? ISSUER)
      .setAudience((claims.aud as string | undefined) ?? AUDIENCE)
      .setSubject('8f2c-xavier')
      .setIssuedAt(nowSec - 10)
      .setExpirationTime(nowSec + (options.ttlSec ?? 600))
      .setJti(`jti-${Math.random()}`)
      .sign(options.key ?? signingKey);
  };
  const refused = (response: ApiResponse, status: number, code: string, what: string) => {
    assert.equal(response.status, status, `${what}: ${JSON.stringify(response.body)}`);
    assert.equal(response.body.error.code, code, what);
  };

  before(async () => {
    ({ privateKey: signingKey } = await generateKeyPair('RS256', { extractable: true }));
    ({ privateKey: strangerKey } = await generateKeyPair('RS256', { extractable: true }));
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = await exportJWK(signingKey);
    idp = createServer((req, res) => {
      jwksRequests += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [{ ...publicJwk, kid: 'idp-key-1', alg: 'RS256', use: 'sig' }] }));
    });
    idp.listen(0, '127.0.0.1');
    await once(idp, 'listening');
    const port = (idp.address() as { port: number }).port;

    // A port nothing listens on: the second issuer's JWKS is unreachable.
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));

    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ph-oidc-'));
    await writeFile(
      path.join(dataDir, 'oidc.json'),
      JSON.stringify({
        issuers: [
          {
            issuer: ISSUER,
            jwksUrl: `http://127.0.0.1:${port}/jwk`,
            audience: AUDIENCE,
            vo: 'vo-x',
            algorithms: ['RS256'],
            userClaim: 'preferred_username',
            groupsClaim: 'groups',
            groups: [
              { idpGroup: '/vo-x/admins', group: 'vo-x_admin', properties: ['NormalUser', 'JobAdministrator'] },
              { idpGroup: '/vo-x/prod', group: 'vo-x_prod', properties: ['NormalUser', 'JobSharing'] },
              { idpGroup: '/vo-x', group: 'vo-x_user', properties: ['NormalUser'] },
            ],
          },
          {
            issuer: DOWN_ISSUER,
            jwksUrl: `http://127.0.0.1:${closedPort}/jwk`,
            audience: AUDIENCE,
            vo: 'vo-y',
            groups: [{ idpGroup: '*', group: 'vo-y_user', properties: ['NormalUser'] }],
          },
        ],
      }),
    );
    m = await startTestMatcher({ dataDir });
  });
  after(async () => {
    await m.close();
    idp.close();
  });

  it('a token of the trusted issuer maps to VO, group, user and properties (first matching group wins)', async () => {
    const plain = await m.api('GET', '/api/auth/userinfo', { token: await idpToken({}) });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.deepEqual(
      { ...plain.body, tokenId: undefined, expiresAt: undefined },
      {
        user: 'xavier',
        vo: 'vo-x',
        group: 'vo-x_user',
        properties: ['NormalUser'],
        issuer: ISSUER,
        tokenId: undefined,
        expiresAt: undefined,
      },
    );
    const admin = await m.api('GET', '/api/auth/userinfo', {
      token: await idpToken({ groups: ['/vo-x', '/vo-x/admins'] }),
    });
    assert.equal(admin.body.group, 'vo-x_admin');
    assert.deepEqual(admin.body.properties, ['NormalUser', 'JobAdministrator']);
    assert.ok(jwksRequests >= 1, 'the JWKS was fetched from the IdP');
  });

  it('an external user submits and sees their own jobs, in their VO, and nobody else’s', async () => {
    const token = await idpToken({});
    const submitted = await m.api('POST', '/api/jobs', { token, json: { executable: 'true' } });
    assert.equal(submitted.status, 201);
    const job = (await m.api('GET', `/api/jobs/${submitted.body.jobIds[0]}`, { token })).body;
    assert.deepEqual([job.owner, job.vo, job.group], ['xavier', 'vo-x', 'vo-x_user']);
    const adminJob = (await m.api('POST', '/api/jobs', { json: { executable: 'true' } })).body.jobIds[0];
    refused(await m.api('GET', `/api/jobs/${adminJob}`, { token }), 403, 'FORBIDDEN', "another VO's job");
  });

  it('bad external tokens: wrong audience, untrusted issuer, unknown key, unmapped group, no user, HS256, expired', async () => {
    const cases: [string, Promise<string>, number, string][] = [
      ['wrong audience', idpToken({ aud: 'someone-else' }), 401, 'TOKEN_INVALID'],
      ['untrusted issuer', idpToken({ iss: 'https://evil.example.org/' }), 401, 'TOKEN_INVALID'],
      ['key not in the JWKS', idpToken({}, { key: strangerKey, kid: 'idp-key-2' }), 401, 'TOKEN_INVALID'],
      ['forged with the known kid', idpToken({}, { key: strangerKey }), 401, 'TOKEN_INVALID'],
      ['unmapped group', idpToken({ groups: ['/other-vo'] }), 401, 'TOKEN_INVALID'],
      ['no user claim', idpToken({ preferred_username: undefined }), 401, 'TOKEN_INVALID'],
      [
        'HS256 with the public key as secret',
        new SignJWT({ groups: ['/vo-x'], preferred_username: 'xavier' })
          .setProtectedHeader({ alg: 'HS256', kid: 'idp-key-1' })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setSubject('x')
          .setExpirationTime('10m')
          .sign(new TextEncoder().encode('x'.repeat(32))),
        401,
        'TOKEN_INVALID',
      ],
      ['expired', idpToken({}, { ttlSec: -120 }), 401, 'TOKEN_EXPIRED'],
    ];
    const before = (await m.api('POST', '/api/jobs/search', { json: {} })).body.total;
    for (const [what, token, status, code] of cases) {
      refused(await m.api('POST', '/api/jobs', { token: await token, json: { executable: 'x' } }), status, code, what);
    }
    assert.equal((await m.api('POST', '/api/jobs/search', { json: {} })).body.total, before, 'nothing was submitted');
  });

  it('an unreachable JWKS is 503 IDP_UNAVAILABLE (retryable), not a token error', async () => {
    const response = await m.api('GET', '/api/auth/userinfo', { token: await idpToken({ iss: DOWN_ISSUER }) });
    refused(response, 503, 'IDP_UNAVAILABLE', 'JWKS down');
    assert.equal(response.body.error.retryable, true);
  });

  it('an external token can be revoked by value, and never opens the pilot WebSocket', async () => {
    const token = await idpToken({});
    const upgrade = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${m.url.replace('http', 'ws')}/api/pilots/connect`, {
        headers: { authorization: `Bearer ${token}` },
      });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => {});
    });
    assert.equal(upgrade, 403, 'a user token is not a pilot token');
    assert.equal((await m.api('POST', '/api/auth/revoke', { json: { token } })).status, 200);
    refused(await m.api('GET', '/api/auth/userinfo', { token }), 401, 'TOKEN_REVOKED', 'revoked');
  });
});
