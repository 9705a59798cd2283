/**
 * The pilot's credential towards the matcher: a token given on the command line (`--token-file`), or a
 * one-time secret (`--secret-file`) exchanged at start for a short-lived pilot token plus a one-time
 * refresh token (POST /api/auth/pilot-token).
 *
 * Refresh design: the pilot token is only presented when a WebSocket is opened (job tokens cover
 * sandboxes), and an open session stays authenticated while its token is not revoked. So the pilot
 * keeps a *fresh* token for the next (re)connect: it refreshes at half its token's life, spending
 * the refresh token and getting a new pair each time, and the link asks `token()` before each
 * connection, which refreshes first when less than a minute is left (so a matcher outage longer than
 * the token's life ends in a refresh, not in a refused reconnect). Transient failures are retried
 * with backoff until the refresh token expires; a refused refresh (pilot revoked, token spent) is
 * final: the current session goes on, the next connection fails, and the pilot stops (exit 3).
 */
import { errorOfAnswer, httpRequest, readText, type MatcherAgent } from './http-request.ts';
import { backoffDelayMs, delay, type BackoffOptions } from '../shared/backoff.ts';
import type { Clock } from '../shared/clock.ts';
import { MatcherEndpoints } from '../shared/endpoints.ts';
import { PilothouseError, isErrorCode } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';

/** Never refresh sooner than this after getting a token (a clock far off must not cause a storm). */
const MIN_REFRESH_DELAY_MS = 5_000;
/** A connection is opened only with a token that has at least this long to live. */
const MIN_REMAINING_FOR_CONNECT_MS = 60_000;

export interface PilotCredentials {
  /** The token for the next connection: refreshed first when it is about to expire. */
  token(): Promise<string>;
  stop(): void;
}

export function staticCredentials(token: string): PilotCredentials {
  return { token: async () => token, stop: () => {} };
}

interface Grant {
  pilotToken: string;
  expiresAt: string;
  refreshToken: string;
  refreshExpiresAt: string;
}

export interface SecretExchangeOptions {
  matcher: MatcherEndpoints;
  pilotStamp: string;
  secret: string;
  agent?: MatcherAgent | undefined;
  backoff: BackoffOptions;
  /** How long the first exchange may keep retrying an unreachable matcher. */
  startTimeoutMs: number;
  clock: Clock;
  logger: Logger;
}

/** Exchanges the secret (retrying while the matcher is unreachable) and keeps the token fresh. */
export async function exchangeSecret(options: SecretExchangeOptions): Promise<PilotCredentials> {
  const { clock, logger } = options;
  let grant = await withRetries(options, clock.nowMs() + options.startTimeoutMs, () =>
    post(options, { pilotStamp: options.pilotStamp, secret: options.secret }),
  );
  logger.info({ expiresAt: grant.expiresAt }, 'pilot secret exchanged for a pilot token');
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let inflight: Promise<void> | null = null;

  // One refresh at a time; it retries transient failures until the refresh token itself expires.
  const refresh = (): Promise<void> =>
    (inflight ??= (async () => {
      try {
        const next = await withRetries(options, Date.parse(grant.refreshExpiresAt), () =>
          post(options, { pilotStamp: options.pilotStamp, refreshToken: grant.refreshToken }),
        );
        if (stopped) return;
        grant = next;
        logger.debug({ expiresAt: grant.expiresAt }, 'pilot token refreshed');
        schedule();
      } finally {
        inflight = null;
      }
    })());
  const schedule = (): void => {
    if (timer) clearTimeout(timer);
    const lifetimeMs = Date.parse(grant.expiresAt) - clock.nowMs();
    timer = setTimeout(
      () => {
        refresh().catch((error: unknown) =>
          logger.error(
            { err: error, code: (error as PilothouseError).code },
            'pilot token refresh refused: the next reconnect will fail',
          ),
        );
      },
      Math.max(MIN_REFRESH_DELAY_MS, lifetimeMs / 2),
    );
    timer.unref();
  };
  schedule();
  return {
    async token() {
      if (Date.parse(grant.expiresAt) - clock.nowMs() < MIN_REMAINING_FOR_CONNECT_MS) await refresh();
      return grant.pilotToken;
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

async function withRetries(
  options: SecretExchangeOptions,
  deadlineMs: number,
  attempt: () => Promise<Grant>,
): Promise<Grant> {
  for (let failures = 0; ; failures += 1) {
    try {
      return await attempt();
    } catch (thrown) {
      const error = thrown instanceof PilothouseError ? thrown : toUnreachable(options.matcher.base, thrown);
      const delayMs = backoffDelayMs(failures, options.backoff);
      if (!error.retryable || options.clock.nowMs() + delayMs > deadlineMs) throw error;
      options.logger.warn({ code: error.code, delayMs }, 'pilot token exchange failed; retrying');
      await delay(delayMs);
    }
  }
}

async function post(options: SecretExchangeOptions, body: object): Promise<Grant> {
  const base = options.matcher.base;
  let response;
  try {
    response = await httpRequest(`${base}/api/auth/pilot-token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      agent: options.agent,
    });
  } catch (thrown) {
    // This address is down: the next try (and the WebSocket) goes to the next one.
    options.matcher.unreachable(base);
    throw toUnreachable(base, thrown);
  }
  const text = await readText(response);
  const status = response.statusCode ?? 0;
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: handled below
  }
  if (status === 200) {
    const grant = parsed as Partial<Grant> | null;
    if (
      typeof grant?.pilotToken === 'string' &&
      typeof grant.refreshToken === 'string' &&
      typeof grant.expiresAt === 'string' &&
      typeof grant.refreshExpiresAt === 'string'
    ) {
      return grant as Grant;
    }
    throw new PilothouseError('PROTOCOL_VIOLATION', 'the pilot-token answer lacks its fields');
  }
  const error = errorOfAnswer(parsed);
  const code = isErrorCode(error?.code) ? error.code : status >= 500 ? 'MATCHER_UNREACHABLE' : 'INTERNAL';
  throw new PilothouseError(code, typeof error?.message === 'string' ? error.message : `HTTP ${status}`);
}

function toUnreachable(matcherUrl: string, thrown: unknown): PilothouseError {
  return new PilothouseError(
    'MATCHER_UNREACHABLE',
    `cannot reach the matcher at ${matcherUrl}: ${(thrown as Error).message}`,
    {},
    { cause: thrown },
  );
}
