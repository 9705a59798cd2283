/**
 * How many frames one pilot connection may send: a token bucket, refilled at `framesPerSec` up to
 * `burst`. A well-behaved pilot sends a handful of frames per job; a connection that floods the
 * matcher is told RATE_LIMITED and closed, so that one client cannot starve the event loop that
 * every other pilot shares.
 */
import type { Clock } from '../../shared/clock.ts';

export interface FrameBudgetOptions {
  framesPerSec: number;
  burst: number;
}

export class FrameBudget {
  readonly #options: FrameBudgetOptions;
  readonly #clock: Clock;
  #tokens: number;
  #lastMs: number;

  constructor(options: FrameBudgetOptions, clock: Clock) {
    this.#options = options;
    this.#clock = clock;
    this.#tokens = options.burst;
    this.#lastMs = clock.nowMs();
  }

  /** Spends one frame; false when the connection is over its budget. */
  take(): boolean {
    const nowMs = this.#clock.nowMs();
    const elapsedSec = Math.max(0, nowMs - this.#lastMs) / 1000;
    this.#lastMs = nowMs;
    this.#tokens = Math.min(this.#options.burst, this.#tokens + elapsedSec * this.#options.framesPerSec);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
