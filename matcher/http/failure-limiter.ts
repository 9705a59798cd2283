/**
 * Throttles an address that keeps failing on a public route (the pilot-token exchange): after
 * `maxFailures` failures within `windowMs`, every request from it is refused with RATE_LIMITED until
 * the window ends. Successes cost nothing, so a site's NAT starting hundreds of pilots is not slowed.
 * The counts live in the credential store, so replicas behind a load balancer share one budget per
 * address (an attacker does not get one per replica); ended windows are purged with expired
 * credentials.
 */
import { PilothouseError } from '../../shared/errors.ts';
import type { Clock } from '../../shared/clock.ts';
import type { CredentialStore } from '../store/credential-store.ts';

export interface FailureLimiterOptions {
  maxFailures: number;
  windowMs: number;
}

type FailureCounts = Pick<CredentialStore, 'recordExchangeFailure' | 'exchangeFailures'>;

export class FailureLimiter {
  readonly #counts: FailureCounts;
  readonly #clock: Clock;
  readonly #maxFailures: number;
  readonly #windowMs: number;

  constructor(options: FailureLimiterOptions, deps: { counts: FailureCounts; clock: Clock }) {
    this.#counts = deps.counts;
    this.#clock = deps.clock;
    this.#maxFailures = options.maxFailures;
    this.#windowMs = options.windowMs;
  }

  /** Throws RATE_LIMITED while the address is over its budget. */
  async check(address: string): Promise<void> {
    const nowMs = this.#clock.nowMs();
    const window = await this.#counts.exchangeFailures(address, nowMs);
    if (window && window.failures >= this.#maxFailures) {
      const retryAfterSec = Math.max(1, Math.ceil((window.endsAtMs - nowMs) / 1000));
      throw new PilothouseError(
        'RATE_LIMITED',
        `too many failed attempts from ${address}; retry in ${retryAfterSec} s`,
        { retryAfterSec },
      );
    }
  }

  async recordFailure(address: string): Promise<void> {
    await this.#counts.recordExchangeFailure(address, this.#clock.nowMs(), this.#windowMs);
  }
}
