/**
 * One behavioural suite for every LoginStore: device grants polled as RFC 8628 says (pending,
 * slow_down with a growing interval, approved once, denied, expired), one-time transactions and
 * codes, refresh tokens spent once and revoked by family, purges. The concurrency cases present the
 * same device code, code or refresh token from several connections or processes at once: exactly one
 * may win.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { LoginIdentity, LoginStore, NewLoginGrant, UserRefreshToken } from '../../matcher/store/login-store.ts';

export interface LoginStoreFixture {
  store: LoginStore;
  /** More stores on the same database: other connections, or other processes for SQLite. */
  others(count: number): Promise<LoginStore[]>;
}

const T0 = Date.parse('2026-01-01T00:00:00Z');
const ALICE: LoginIdentity = {
  subject: 'alice',
  vo: 'vo-a',
  group: 'vo-a_user',
  properties: ['NormalUser'],
  issuer: 'https://idp.example',
};

const grant = (hash: string, extra: Partial<NewLoginGrant> = {}): NewLoginGrant => ({
  hash,
  kind: 'device',
  clientId: 'pilothouse-cli',
  userCode: `CODE-${hash}`,
  data: { scope: 'vo:vo-a' },
  intervalSec: 2,
  createdAtMs: T0,
  expiresAtMs: T0 + 600_000,
  ...extra,
});

const refresh = (hash: string, extra: Partial<UserRefreshToken> = {}): Omit<UserRefreshToken, 'spentAtMs'> => ({
  hash,
  family: 'family-1',
  clientId: 'pilothouse-cli',
  identity: ALICE,
  scope: 'vo:vo-a',
  createdAtMs: T0,
  expiresAtMs: T0 + 3_600_000,
  familyExpiresAtMs: T0 + 86_400_000,
  accessTokenId: `access-${hash}`,
  accessExpiresAtMs: T0 + 1_200_000,
  ...extra,
});

export function loginStoreSuite(name: string, openFixture: () => Promise<LoginStoreFixture>): void {
  describe(`LoginStore conformance: ${name}`, () => {
    let store: LoginStore;
    let fixture: LoginStoreFixture;
    beforeEach(async () => {
      fixture = await openFixture();
      store = fixture.store;
    });
    afterEach(() => store.close());

    it('a device grant: pending, slow_down with a growing interval, approved exactly once', async () => {
      await store.addGrant(grant('d1'));
      assert.equal((await store.pendingDeviceGrant('CODE-d1', T0 + 1))?.hash, 'd1');
      assert.deepEqual(await store.pollDeviceGrant('d1', 'pilothouse-cli', T0 + 1000), { outcome: 'pending' });
      assert.deepEqual(await store.pollDeviceGrant('d1', 'pilothouse-cli', T0 + 2000), {
        outcome: 'slow-down',
        intervalSec: 7,
      });
      // The new interval counts from the poll that was too soon.
      assert.equal((await store.pollDeviceGrant('d1', 'pilothouse-cli', T0 + 8000)).outcome, 'slow-down');
      assert.equal((await store.pollDeviceGrant('d1', 'pilothouse-cli', T0 + 21_000)).outcome, 'pending');
      assert.equal((await store.pollDeviceGrant('d1', 'another-client', T0 + 40_000)).outcome, 'unknown');

      assert.equal(await store.settleDeviceGrant('d1', ALICE, T0 + 30_000), true);
      assert.equal(await store.settleDeviceGrant('d1', null, T0 + 30_001), false, 'settled once');
      assert.equal(await store.pendingDeviceGrant('CODE-d1', T0 + 30_002), null);
      const approved = await store.pollDeviceGrant('d1', 'pilothouse-cli', T0 + 40_000);
      assert.equal(approved.outcome, 'approved');
      assert.deepEqual(approved.outcome === 'approved' && approved.grant.identity, ALICE);
      assert.deepEqual(approved.outcome === 'approved' && approved.grant.data, { scope: 'vo:vo-a' });
      assert.equal((await store.pollDeviceGrant('d1', 'pilothouse-cli', T0 + 50_000)).outcome, 'unknown', 'spent');
    });

    it('a device grant denied, one expired, one unknown; user codes are unique', async () => {
      await store.addGrant(grant('d2'));
      await store.addGrant(grant('d3', { expiresAtMs: T0 + 5000 }));
      assert.equal(await store.settleDeviceGrant('d2', null, T0 + 1), true);
      assert.equal((await store.pollDeviceGrant('d2', 'pilothouse-cli', T0 + 10)).outcome, 'denied');
      assert.equal((await store.pollDeviceGrant('d3', 'pilothouse-cli', T0 + 5000)).outcome, 'expired');
      assert.equal(await store.pendingDeviceGrant('CODE-d3', T0 + 5000), null);
      assert.equal(await store.settleDeviceGrant('d3', ALICE, T0 + 5000), false, 'too late to sign in');
      assert.equal((await store.pollDeviceGrant('nope', 'pilothouse-cli', T0)).outcome, 'unknown');
      await assert.rejects(store.addGrant(grant('d4', { userCode: 'CODE-d2' })));
    });

    it('a transaction or a code is taken once, by its kind, before it expires', async () => {
      await store.addGrant(grant('t1', { kind: 'transaction', userCode: null, data: { verifier: 'v' } }));
      await store.addGrant(grant('c1', { kind: 'code', userCode: null, identity: ALICE }));
      await store.addGrant(grant('c2', { kind: 'code', userCode: null, expiresAtMs: T0 + 10 }));
      assert.equal(await store.takeGrant('t1', 'code', T0), null, 'kind matters');
      assert.deepEqual((await store.takeGrant('t1', 'transaction', T0))?.data, { verifier: 'v' });
      assert.equal(await store.takeGrant('t1', 'transaction', T0), null, 'taken once');
      assert.deepEqual((await store.takeGrant('c1', 'code', T0))?.identity, ALICE);
      assert.equal(await store.takeGrant('c2', 'code', T0 + 10), null, 'expired');
      assert.equal(await store.takeGrant('c2', 'code', T0 + 1), null, 'an expired take spends it too');
    });

    it('a refresh token is spent once before it expires; a family is revoked with its live access tokens', async () => {
      await store.addRefreshToken(refresh('r1'));
      await store.addRefreshToken(refresh('r2', { accessExpiresAtMs: T0 + 100 }));
      await store.addRefreshToken(refresh('r3', { family: 'family-2', expiresAtMs: T0 + 50 }));
      const spent = await store.spendRefreshToken('r1', T0 + 10);
      assert.equal(spent.outcome, 'spent');
      assert.deepEqual(spent.outcome === 'spent' && spent.token.identity, ALICE);
      assert.equal((await store.spendRefreshToken('r1', T0 + 11)).outcome, 'already-spent');
      assert.equal((await store.spendRefreshToken('r3', T0 + 50)).outcome, 'expired');
      assert.equal((await store.spendRefreshToken('zz', T0)).outcome, 'unknown');
      const revoked = await store.revokeRefreshFamily('family-1', T0 + 200);
      assert.deepEqual(revoked, [{ tokenId: 'access-r1', expiresAtMs: T0 + 1_200_000 }]);
      assert.equal((await store.spendRefreshToken('r2', T0 + 201)).outcome, 'already-spent');
    });

    it('purges what has expired, keeping refresh tokens whose access token still lives', async () => {
      await store.addGrant(grant('p1', { expiresAtMs: T0 + 10 }));
      await store.addGrant(grant('p2'));
      await store.addRefreshToken(refresh('p3', { expiresAtMs: T0 + 10, accessExpiresAtMs: T0 + 20 }));
      await store.addRefreshToken(refresh('p4', { expiresAtMs: T0 + 10, accessExpiresAtMs: T0 + 10 }));
      assert.deepEqual(await store.purgeExpired(T0 + 15), { grants: 1, refreshTokens: 1 });
      assert.equal((await store.spendRefreshToken('p3', T0 + 16)).outcome, 'expired');
      assert.equal((await store.pollDeviceGrant('p1', 'pilothouse-cli', T0 + 16)).outcome, 'unknown');
    });

    it('one device code, code or refresh token presented from several connections or processes at once: one wins', async () => {
      await store.addGrant(grant('race-d'));
      await store.settleDeviceGrant('race-d', ALICE, T0 + 1);
      await store.addGrant(grant('race-c', { kind: 'code', userCode: null, identity: ALICE }));
      await store.addRefreshToken(refresh('race-r'));
      const others = await fixture.others(6);
      try {
        const polls = await Promise.all(others.map((o) => o.pollDeviceGrant('race-d', 'pilothouse-cli', T0 + 10)));
        assert.equal(polls.filter((p) => p.outcome === 'approved').length, 1, JSON.stringify(polls));
        const takes = await Promise.all(others.map((o) => o.takeGrant('race-c', 'code', T0 + 10)));
        assert.equal(takes.filter((t) => t !== null).length, 1);
        const spends = await Promise.all(others.map((o) => o.spendRefreshToken('race-r', T0 + 10)));
        assert.equal(spends.filter((s) => s.outcome === 'spent').length, 1);
        assert.equal(spends.filter((s) => s.outcome === 'already-spent').length, others.length - 1);
      } finally {
        await Promise.all(others.map((o) => o.close()));
      }
    });
  });
}
