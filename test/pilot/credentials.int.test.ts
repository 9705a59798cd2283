/**
 * The pilot's secret exchange and token refresh against a real matcher. The pilot's clock is fake:
 * moving it near the token's expiry makes the next `token()` refresh first (no sleeping).
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { MatcherEndpoints } from '../../shared/endpoints.ts';
import { exchangeSecret, type PilotCredentials } from '../../pilot/credentials.ts';
import { PilothouseError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logger.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot } from '../helpers/raw-pilot.ts';

const BACKOFF = { initialDelayMs: 10, maxDelayMs: 50, jitter: 0 };

describe('pilot credentials (secret exchange, refresh)', () => {
  let m: TestMatcher;
  let credentials: PilotCredentials | null = null;
  let skewMs = 0;
  const clock = { nowMs: () => Date.now() + skewMs };

  const start = async (stamp: string) => {
    const { secret } = (
      await m.api('POST', '/api/auth/pilot-secrets', { json: { vo: 'local', site: 'Site.A', pilotStamp: stamp } })
    ).body;
    credentials = await exchangeSecret({
      matcher: MatcherEndpoints.single(m.url),
      pilotStamp: stamp,
      secret,
      backoff: BACKOFF,
      startTimeoutMs: 1_000,
      clock,
      logger: silentLogger(),
    });
    return { secret, credentials };
  };

  beforeEach(async () => {
    skewMs = 0;
    m = await startTestMatcher();
  });
  afterEach(async () => {
    credentials?.stop();
    await m.close();
  });

  it('exchanges the secret, and refreshes before a connection once the token is about to expire', async () => {
    const { credentials } = await start('refresher');
    const first = await credentials.token();
    assert.equal(await credentials.token(), first, 'no refresh while the token is fresh');
    const pilot = await RawPilot.connect(m.url, first, { stamp: 'refresher', site: 'Site.A' });
    await pilot.close();

    skewMs = 19.5 * 60_000; // 30 s left of the 20 min pilot token
    const second = await credentials.token();
    assert.notEqual(second, first, 'refreshed before handing out a token for a new connection');
    const again = await RawPilot.connect(m.url, second, { stamp: 'refresher', site: 'Site.A' });
    await again.close();
  });

  it('a refused exchange or refresh is final: PILOT_SECRET_* comes out of token()', async () => {
    const { secret, credentials } = await start('doomed');
    await assert.rejects(
      exchangeSecret({
        matcher: MatcherEndpoints.single(m.url),
        pilotStamp: 'doomed',
        secret,
        backoff: BACKOFF,
        startTimeoutMs: 1_000,
        clock,
        logger: silentLogger(),
      }),
      (error: unknown) => error instanceof PilothouseError && error.code === 'PILOT_SECRET_SPENT',
    );
    // The reuse revoked the family: the next refresh is refused for good.
    skewMs = 19.5 * 60_000;
    await assert.rejects(
      credentials.token(),
      (error: unknown) => error instanceof PilothouseError && error.code === 'PILOT_SECRET_SPENT',
    );
  });

  it('an unreachable matcher at start is retried until the start timeout, then MATCHER_UNREACHABLE', async () => {
    await assert.rejects(
      exchangeSecret({
        matcher: MatcherEndpoints.single('http://127.0.0.1:1'),
        pilotStamp: 'nowhere',
        secret: 'phps_x',
        backoff: BACKOFF,
        startTimeoutMs: 100,
        clock,
        logger: silentLogger(),
      }),
      (error: unknown) => error instanceof PilothouseError && error.code === 'MATCHER_UNREACHABLE',
    );
  });
});
