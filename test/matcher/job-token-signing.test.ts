/**
 * Job tokens are HS256 with a secret derived from the signing key (one is minted per match, so signing
 * is on the hot path). The HS256 path must accept nothing but job tokens signed with that secret, and
 * must die with the key.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { KeyRing } from '../../matcher/auth/key-ring.ts';
import { signCompactHs256 } from '../../matcher/auth/jws.ts';
import { TokenService } from '../../matcher/auth/tokens.ts';
import { PilothouseError } from '../../shared/errors.ts';

const clock = { nowMs: () => Date.now() };
const jobRequest = {
  kind: 'job' as const,
  subject: 'job:7:1',
  vo: 'vo-a',
  group: 'g',
  properties: [],
  jobId: 7,
  attempt: 1,
  ttlSec: 600,
};

async function withKeys(test: (keys: KeyRing, tokens: TokenService) => Promise<void>): Promise<void> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ph-jobtok-'));
  try {
    const keys = await KeyRing.open({ dataDir, clock, maxTokenTtlSec: 3600 });
    await test(keys, new TokenService({ keys, clock }));
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

const codeOf = async (promise: Promise<unknown>): Promise<string> => {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof PilothouseError, String(error));
    return error.code;
  }
};

it('job tokens - HS256, verified back to the same job and attempt; user tokens stay EdDSA', async () => {
  await withKeys(async (_keys, tokens) => {
    const jobToken = await tokens.issue(jobRequest);
    assert.equal(decodeProtectedHeader(jobToken).alg, 'HS256');
    const principal = await tokens.verify(jobToken);
    assert.deepEqual([principal.kind, principal.jobId, principal.attempt, principal.vo], ['job', 7, 1, 'vo-a']);
    const userToken = await tokens.issue({
      kind: 'user',
      subject: 'u',
      vo: 'vo-a',
      group: 'g',
      properties: ['NormalUser'],
      ttlSec: 600,
    });
    assert.equal(decodeProtectedHeader(userToken).alg, 'EdDSA');
  });
});

it('job tokens - the HS256 path refuses a non-job token even with the right secret, and a wrong secret', async () => {
  await withKeys(async (keys, tokens) => {
    const signer = keys.signer();
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: 'pilothouse', sub: 'admin', iat: now, exp: now + 600, jti: 'x', vo: 'vo-a', grp: 'g' };
    const userViaHmac = signCompactHs256(
      { alg: 'HS256', kid: signer.kid },
      { ...claims, kind: 'user', props: ['ServiceAdministrator'] },
      signer.jobTokenSecret as Buffer,
    );
    assert.equal(await codeOf(tokens.verify(userViaHmac)), 'TOKEN_INVALID');
    const forged = signCompactHs256(
      { alg: 'HS256', kid: signer.kid },
      { ...claims, kind: 'job', props: [], job: 7, att: 1 },
      Buffer.alloc(32, 1),
    );
    assert.equal(await codeOf(tokens.verify(forged)), 'TOKEN_INVALID');
  });
});

it('job tokens - die when their key is revoked', async () => {
  await withKeys(async (keys, tokens) => {
    const jobToken = await tokens.issue(jobRequest);
    await keys.revoke(keys.signer().kid, 'test');
    assert.equal(await codeOf(tokens.verify(jobToken)), 'TOKEN_REVOKED');
  });
});

it('a token verified once is remembered, yet refused as soon as it expires or its key is revoked', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ph-tokcache-'));
  let nowMs = Date.now();
  const movable = { nowMs: () => nowMs };
  try {
    const keys = await KeyRing.open({ dataDir, clock: movable, maxTokenTtlSec: 3600 });
    const tokens = new TokenService({ keys, clock: movable });
    for (const request of [
      jobRequest,
      { kind: 'user' as const, subject: 'u', vo: 'vo-a', group: 'g', properties: ['NormalUser' as const], ttlSec: 600 },
    ]) {
      const token = await tokens.issue(request);
      assert.equal((await tokens.verify(token)).subject, request.subject);
      assert.equal((await tokens.verify(token)).subject, request.subject, 'the second time, from memory');
      nowMs += 601_000;
      assert.equal(await codeOf(tokens.verify(token)), 'TOKEN_EXPIRED');
      assert.equal(await codeOf(tokens.verify(token)), 'TOKEN_EXPIRED');
      nowMs -= 601_000;
    }
    const token = await tokens.issue(jobRequest);
    assert.equal(await codeOf(tokens.verify(token)), 'ok');
    await keys.revoke(keys.signer().kid, 'test');
    assert.equal(await codeOf(tokens.verify(token)), 'TOKEN_REVOKED');
    // A forged token that shares nothing with the remembered one is checked in full.
    const [header, payload] = token.split('.');
    assert.notEqual(await codeOf(tokens.verify(`${header}.${payload}.AAAA`)), 'ok');
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
