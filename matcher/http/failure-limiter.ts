/**
 * Throttles an address that keeps failing on a public route (the pilot-token exchange): after
 * `maxFailures` failures within `windowMs`, every request from it is refused with RATE_LIMITED until
 * the window ends. Successes cost nothing, so a site's NAT starting hundreds of pilots is not slowed.
 * Memory is bounded: the oldest addresses are forgotten first.
 */
import { PilothouseError } from '../../shared/errors.ts';
import type { Clock } from '../../shared/clock.ts';

export interface FailureLimiterOptions {
  maxFailures: number;
  windowMs: number;
  /** How many addresses are remembered at most. */
  maxTrackedAddresses?: number;
}

interface Window {
  startMs: number;
  failures: number;
}

export class FailureLimiter {
  readonly #windows = new Map<string, Window>();
  readonly #clock: Clock;
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #maxTracked: number;

  constructor(options: FailureLimiterOptions, clock: Clock) {
    this.#clock = clock;
    this.#maxFailures = options.maxFailures;
    this.#windowMs = options.windowMs;
    this.#maxTracked = options.maxTrackedAddresses ?? 10_000;
  }

  /** Throws RATE_LIMITED while the address is over its budget. */
  check(address: string): void {
    const window = this.#current(address);
    if (window && window.failures >= this.#maxFailures) {
      const retryAfterSec = Math.ceil((window.startMs + this.#windowMs - this.#clock.nowMs()) / 1000);
      throw new PilothouseError(
        'RATE_LIMITED',
        `too many failed attempts from ${address}; retry in ${retryAfterSec} s`,
        {
          retryAfterSec,
        },
      );
    }
  }

  recordFailure(address: string): void {
    const window = this.#current(address);
    if (window) {
      window.failures += 1;
      return;
    }
    if (this.#windows.size >= this.#maxTracked) {
      const oldest = this.#windows.keys().next().value;
      if (oldest !== undefined) this.#windows.delete(oldest);
    }
    this.#windows.set(address, { startMs: this.#clock.nowMs(), failures: 1 });
  }

  #current(address: string): Window | undefined {
    const window = this.#windows.get(address);
    if (window && this.#clock.nowMs() - window.startMs >= this.#windowMs) {
      this.#windows.delete(address);
      return undefined;
    }
    return window;
  }
}
