/**
 * A token bucket per pilot connection: `framesPerSec` frames a second on average, `burst` at once after
 * a quiet spell. A pilot reports a few frames per job, far below the default; a client flooding frames
 * empties the bucket within milliseconds and is cut off, before its frames can pile up in the matcher.
 */
import type { Clock } from '../../shared/clock.ts';

export interface FrameRateOptions {
  framesPerSec: number;
  burst: number;
}

export class FrameRateLimit {
  readonly #options: FrameRateOptions;
  readonly #clock: Clock;
  #tokens: number;
  #lastMs: number;

  constructor(options: FrameRateOptions, deps: { clock: Clock }) {
    this.#options = options;
    this.#clock = deps.clock;
    this.#tokens = options.burst;
    this.#lastMs = deps.clock.nowMs();
  }

  /** Takes one frame's token; false when the connection is over its rate. */
  take(): boolean {
    const nowMs = this.#clock.nowMs();
    const refill = ((nowMs - this.#lastMs) / 1000) * this.#options.framesPerSec;
    this.#tokens = Math.min(this.#options.burst, this.#tokens + refill);
    this.#lastMs = nowMs;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
