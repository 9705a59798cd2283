/**
 * One behavioural suite for every CredentialStore: pilot secrets spent once (and only by their own
 * stamp, before they expire), whole families revoked, token revocations, purges. The concurrency case
 * spends one secret from several connections or processes at once: exactly one may win.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { CredentialStore, NewPilotCredential } from '../../matcher/store/credential-store.ts';

export interface CredentialStoreFixture {
  store: CredentialStore;
  /** More stores on the same database: other connections, or other processes for SQLite. */
  others(count: number): Promise<CredentialStore[]>;
}

const T0 = Date.parse('2026-01-01T00:00:00Z');
const credential = (hash: string, extra: Partial<NewPilotCredential> = {}): NewPilotCredential => ({
  hash,
  kind: 'secret',
  vo: 'vo-a',
  site: 'Site.A',
  pilotStamp: 'stamp-1',
  family: 'family-1',
  createdAtMs: T0,
  expiresAtMs: T0 + 3_600_000,
  familyExpiresAtMs: T0 + 86_400_000,
  createdBy: 'sd1',
  accessTokenId: null,
  accessExpiresAtMs: null,
  ...extra,
});

export function credentialStoreSuite(name: string, openFixture: () => Promise<CredentialStoreFixture>): void {
  describe(`CredentialStore conformance: ${name}`, () => {
    let store: CredentialStore;
    let fixture: CredentialStoreFixture;
    beforeEach(async () => {
      fixture = await openFixture();
      store = fixture.store;
    });
    afterEach(() => store.close());

    it('a secret is spent once, by its own stamp, before it expires', async () => {
      await store.addPilotCredential(credential('h1'));
      await store.addPilotCredential(credential('h2', { expiresAtMs: T0 + 1000 }));
      assert.equal((await store.spendPilotCredential('h1', 'secret', 'stamp-other', T0 + 1)).outcome, 'wrong-stamp');
      assert.equal(
        (await store.spendPilotCredential('h1', 'refresh', 'stamp-1', T0 + 1)).outcome,
        'unknown',
        'kind matters',
      );
      const spent = await store.spendPilotCredential('h1', 'secret', 'stamp-1', T0 + 2);
      assert.equal(spent.outcome, 'spent');
      assert.equal(spent.outcome === 'spent' && spent.credential.spentAtMs, T0 + 2);
      assert.equal((await store.spendPilotCredential('h1', 'secret', 'stamp-1', T0 + 3)).outcome, 'already-spent');
      assert.equal((await store.spendPilotCredential('h2', 'secret', 'stamp-1', T0 + 1000)).outcome, 'expired');
      assert.equal((await store.spendPilotCredential('nope', 'secret', 'stamp-1', T0)).outcome, 'unknown');
    });

    it('one secret spent from several connections or processes at once: exactly one wins', async () => {
      await store.addPilotCredential(credential('contested'));
      const others = await fixture.others(5);
      try {
        const outcomes = await Promise.all(
          [store, ...others].map((s) => s.spendPilotCredential('contested', 'secret', 'stamp-1', T0 + 5)),
        );
        assert.deepEqual(outcomes.map((o) => o.outcome).sort(), [
          'already-spent',
          'already-spent',
          'already-spent',
          'already-spent',
          'already-spent',
          'spent',
        ]);
      } finally {
        await Promise.all(others.map((s) => s.close()));
      }
    });

    it('exchange failures are counted per address in a window that starts at the first one', async () => {
      const WINDOW = 60_000;
      assert.equal(await store.exchangeFailures('10.0.0.1', T0), null);
      assert.deepEqual(await store.recordExchangeFailure('10.0.0.1', T0, WINDOW), {
        failures: 1,
        startedAtMs: T0,
        endsAtMs: T0 + WINDOW,
      });
      await store.recordExchangeFailure('10.0.0.1', T0 + 10, WINDOW);
      await store.recordExchangeFailure('10.0.0.2', T0 + 20, WINDOW);
      assert.deepEqual(await store.exchangeFailures('10.0.0.1', T0 + WINDOW - 1), {
        failures: 2,
        startedAtMs: T0,
        endsAtMs: T0 + WINDOW,
      });
      assert.equal(await store.exchangeFailures('10.0.0.1', T0 + WINDOW), null, 'the window has ended');
      assert.deepEqual(await store.recordExchangeFailure('10.0.0.1', T0 + WINDOW + 5, WINDOW), {
        failures: 1,
        startedAtMs: T0 + WINDOW + 5,
        endsAtMs: T0 + 2 * WINDOW + 5,
      });
      await store.purgeExpired(T0 + WINDOW + 20);
      assert.equal(await store.exchangeFailures('10.0.0.2', T0 + 30), null, 'ended windows are purged');
      assert.equal((await store.exchangeFailures('10.0.0.1', T0 + WINDOW + 20))?.failures, 1);
    });

    it('failures recorded from several connections or processes at once are all counted', async () => {
      const others = await fixture.others(5);
      try {
        await Promise.all(
          [store, ...others].flatMap((s) =>
            Array.from({ length: 4 }, () => s.recordExchangeFailure('10.9.9.9', T0 + 1, 60_000)),
          ),
        );
        assert.equal((await store.exchangeFailures('10.9.9.9', T0 + 2))?.failures, 24);
      } finally {
        await Promise.all(others.map((s) => s.close()));
      }
    });

    it('revoking a family spends its members and revokes their live access tokens', async () => {
      await store.addPilotCredential(credential('f-secret'));
      await store.addPilotCredential(
        credential('f-refresh-1', { kind: 'refresh', accessTokenId: 'jti-1', accessExpiresAtMs: T0 + 1_200_000 }),
      );
      await store.addPilotCredential(
        credential('f-refresh-0', { kind: 'refresh', accessTokenId: 'jti-0', accessExpiresAtMs: T0 + 10 }),
      );
      await store.addPilotCredential(credential('other', { family: 'family-2' }));
      const revoked = await store.revokePilotFamily('family-1', T0 + 100, 'reused');
      assert.deepEqual(revoked, ['jti-1'], 'an access token already expired needs no revocation');
      assert.equal(await store.isTokenRevoked('jti-1'), true);
      assert.equal(await store.isTokenRevoked('jti-0'), false);
      assert.equal(
        (await store.spendPilotCredential('f-secret', 'secret', 'stamp-1', T0 + 101)).outcome,
        'already-spent',
      );
      assert.equal((await store.spendPilotCredential('other', 'secret', 'stamp-1', T0 + 101)).outcome, 'spent');
    });

    it('a token is revoked once; expired credentials and revocations are purged', async () => {
      const revocation = { tokenId: 'jti-x', expiresAtMs: T0 + 1000, reason: 'leaked', revokedBy: 'admin', atMs: T0 };
      assert.equal(await store.revokeToken(revocation), true);
      assert.equal(await store.revokeToken(revocation), false);
      await store.addPilotCredential(credential('old', { expiresAtMs: T0 + 10 }));
      await store.addPilotCredential(credential('alive', { expiresAtMs: T0 + 10_000 }));
      assert.deepEqual(await store.purgeExpired(T0 + 2000), { credentials: 1, revokedTokens: 1 });
      assert.equal(await store.isTokenRevoked('jti-x'), false);
      assert.equal((await store.spendPilotCredential('old', 'secret', 'stamp-1', T0)).outcome, 'unknown');
    });
  });
}
