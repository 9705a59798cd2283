/**
 * Signing keys: rotation keeps old keys verifying until their recorded retire time, then drops them;
 * revocation stops a key at once, erases its private half and reaches another process sharing the
 * directory on its next refresh. Time is a fake clock; two KeyRing instances stand for two processes.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KEY_RETIRE_SKEW_MS, KeyRing } from '../../matcher/auth/key-ring.ts';
import { TokenService } from '../../matcher/auth/tokens.ts';
import { PilothouseError } from '../../shared/errors.ts';

const MAX_TTL_SEC = 3_600;

describe('key ring', () => {
  let dataDir: string;
  let nowMs: number;
  const clock = { nowMs: () => nowMs };
  const open = () => KeyRing.open({ dataDir, clock, maxTokenTtlSec: MAX_TTL_SEC });
  const userToken = (tokens: TokenService, ttlSec = 600) =>
    tokens.issue({ kind: 'user', subject: 'alice', vo: 'vo-a', group: 'g', properties: ['NormalUser'], ttlSec });
  const codeOf = async (promise: Promise<unknown>) => {
    try {
      await promise;
      return 'ok';
    } catch (error) {
      assert.ok(error instanceof PilothouseError, String(error));
      return error.code;
    }
  };

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'ph-keys-'));
    nowMs = Date.UTC(2030, 0, 1);
  });
  afterEach(() => rm(dataDir, { recursive: true, force: true }));

  it('rotation: the new key signs, the old one verifies until its recorded retire time, then is deleted', async () => {
    const ring = await open();
    const tokens = new TokenService({ keys: ring, clock });
    const first = ring.signer().kid;
    const oldToken = await userToken(tokens, MAX_TTL_SEC);

    nowMs += 1_000;
    const rotated = await ring.rotate();
    assert.notEqual(rotated.kid, first);
    assert.equal(ring.signer().kid, rotated.kid);
    const old = ring.list().find((k) => k.kid === first);
    assert.equal(old?.status, 'retiring');
    assert.equal(old?.retireAtMs, nowMs + MAX_TTL_SEC * 1000 + KEY_RETIRE_SKEW_MS, 'retire time recorded');
    assert.deepEqual(
      ring
        .publicJwks()
        .keys.map((k) => k.kid)
        .sort(),
      [first, rotated.kid].sort(),
    );
    assert.equal((await tokens.verify(oldToken)).subject, 'alice', 'tokens of the old key still verify');

    nowMs = (old?.retireAtMs ?? 0) + 1;
    const { dropped } = await ring.maintain(null);
    assert.deepEqual(dropped, [first]);
    assert.deepEqual(
      (await readdir(path.join(dataDir, 'keys'))).filter((n) => n.endsWith('.jwk.json')),
      [`${rotated.kid}.jwk.json`],
    );
    assert.deepEqual(
      ring.publicJwks().keys.map((k) => k.kid),
      [rotated.kid],
    );
  });

  it('automatic rotation happens at the configured age, not before', async () => {
    const ring = await open();
    const first = ring.signer().kid;
    nowMs += 59_000;
    assert.equal((await ring.maintain(60_000)).rotated, null);
    nowMs += 1_000;
    const { rotated } = await ring.maintain(60_000);
    assert.ok(rotated && rotated.kid !== first);
    assert.equal((await ring.maintain(null)).rotated, null, 'no rotation when the age is not configured');
  });

  it('revocation: refused at once as TOKEN_REVOKED, private half erased, a new signer made', async () => {
    const ring = await open();
    const tokens = new TokenService({ keys: ring, clock });
    const kid = ring.signer().kid;
    const token = await userToken(tokens);
    const { revoked, newSigner } = await ring.revoke(kid, 'test');
    assert.equal(revoked.status, 'revoked');
    assert.ok(newSigner && newSigner.kid !== kid, 'revoking the signer rotates first');
    assert.equal(await codeOf(tokens.verify(token)), 'TOKEN_REVOKED');
    const stored = JSON.parse(await readFile(path.join(dataDir, 'keys', `${kid}.jwk.json`), 'utf8'));
    assert.equal(stored.jwk.d, undefined, 'the private key is gone from disk');
    assert.ok(!ring.publicJwks().keys.some((k) => k.kid === kid), 'no longer published');
    assert.equal((await tokens.verify(await userToken(tokens))).subject, 'alice', 'the new signer works');
  });

  it('another process sharing the directory sees a rotation and a revocation on its next refresh', async () => {
    const server = await open();
    const cli = await open();
    const serverTokens = new TokenService({ keys: server, clock });
    const token = await userToken(serverTokens);
    const kid = server.signer().kid;

    const rotated = await cli.rotate();
    await server.refresh();
    assert.equal(server.signer().kid, rotated.kid, 'the server signs with the key the CLI made');

    await cli.revoke(kid, 'cli');
    // No explicit refresh: verify() refreshes (one stat of the directory) before looking the key up.
    assert.equal(await codeOf(serverTokens.verify(token)), 'TOKEN_REVOKED');
  });

  it('a token that outlives what its key may sign is refused; issuing one is refused too', async () => {
    const ring = await open();
    const tokens = new TokenService({ keys: ring, clock });
    assert.equal(await codeOf(userToken(tokens, MAX_TTL_SEC + 1)), 'CONFIG_INVALID');
    // A second ring with a larger limit signs a long token with its own key; our ring's limit holds.
    const other = await KeyRing.open({ dataDir, clock, maxTokenTtlSec: MAX_TTL_SEC * 10 });
    await other.rotate();
    const long = await userToken(new TokenService({ keys: other, clock }), MAX_TTL_SEC * 5);
    assert.equal((await tokens.verify(long)).subject, 'alice', "the new key's own limit is what counts");
  });

  it('tokens from a foreign key under a known kid, or tampered, are TOKEN_INVALID; expired ones TOKEN_EXPIRED', async () => {
    const ring = await open();
    const tokens = new TokenService({ keys: ring, clock });
    const foreignDir = await mkdtemp(path.join(os.tmpdir(), 'ph-keys-foreign-'));
    try {
      const foreign = await KeyRing.open({ dataDir: foreignDir, clock, maxTokenTtlSec: MAX_TTL_SEC });
      const forged = await userToken(new TokenService({ keys: foreign, clock }));
      assert.equal(await codeOf(tokens.verify(forged)), 'TOKEN_INVALID', 'unknown kid');
      // Same kid as ours, signed by another key: the signature does not verify.
      const [, payload, signature] = forged.split('.');
      const header = Buffer.from(JSON.stringify({ alg: 'EdDSA', kid: ring.signer().kid, typ: 'JWT' })).toString(
        'base64url',
      );
      assert.equal(await codeOf(tokens.verify(`${header}.${payload}.${signature}`)), 'TOKEN_INVALID');
      const good = await userToken(tokens);
      const [h, p, s] = good.split('.');
      const claims = JSON.parse(Buffer.from(p as string, 'base64url').toString());
      const tampered = Buffer.from(JSON.stringify({ ...claims, props: ['ServiceAdministrator'] })).toString(
        'base64url',
      );
      assert.equal(await codeOf(tokens.verify(`${h}.${tampered}.${s}`)), 'TOKEN_INVALID');
      nowMs += 601_000;
      assert.equal(await codeOf(tokens.verify(good)), 'TOKEN_EXPIRED');
    } finally {
      await rm(foreignDir, { recursive: true, force: true });
    }
  });
});
