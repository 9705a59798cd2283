/**
 * The director's memory of how each CE and queue behaved, and the throttles it derives:
 *  - CE errors (a submission or status call that failed): no submission to the CE for a delay that
 *    doubles with each further error (initial … max), cleared by the next success;
 *  - empty pilots (started, reached the matcher, matched nothing): after `threshold` in a row a queue
 *    backs off, longer each time it happens again; a pilot that ran a job clears it;
 *  - missed pilots (ended without ever reaching the matcher: bad node, no Node.js, broken network):
 *    while `max` or more fell within the window, the CE gets no pilots (Harvester's missed-worker rule).
 * Time comes from the injected clock; nothing here does I/O.
 */
import type { Clock } from '../shared/clock.ts';
import type { DirectorConfig } from './config/load.ts';

export type PilotOutcome = 'useful' | 'empty' | 'missed';

interface CeMemory {
  consecutiveErrors: number;
  backedOffUntilMs: number;
  lastError: string | null;
  missedAtMs: number[];
}

interface QueueMemory {
  emptyInARow: number;
  backoffs: number;
  backedOffUntilMs: number;
}

export interface CeThrottleState {
  consecutiveErrors: number;
  backedOffUntilMs: number | null;
  lastError: string | null;
  missedInWindow: number;
  throttledUntilMs: number | null;
}

export class Throttles {
  readonly #clock: Clock;
  readonly #options: DirectorConfig['throttles'];
  readonly #ces = new Map<string, CeMemory>();
  readonly #queues = new Map<string, QueueMemory>();

  constructor(options: DirectorConfig['throttles'], clock: Clock) {
    this.#options = options;
    this.#clock = clock;
  }

  #ce(key: string): CeMemory {
    let memory = this.#ces.get(key);
    if (!memory) {
      memory = { consecutiveErrors: 0, backedOffUntilMs: 0, lastError: null, missedAtMs: [] };
      this.#ces.set(key, memory);
    }
    return memory;
  }

  #queue(key: string): QueueMemory {
    let memory = this.#queues.get(key);
    if (!memory) {
      memory = { emptyInARow: 0, backoffs: 0, backedOffUntilMs: 0 };
      this.#queues.set(key, memory);
    }
    return memory;
  }

  ceFailed(ceKey: string, error: Error): void {
    const memory = this.#ce(ceKey);
    memory.consecutiveErrors += 1;
    memory.lastError = error.message;
    const { initialMs, maxMs } = this.#options.ceErrorBackoffMs;
    memory.backedOffUntilMs = this.#clock.nowMs() + Math.min(maxMs, initialMs * 2 ** (memory.consecutiveErrors - 1));
  }

  ceSucceeded(ceKey: string): void {
    const memory = this.#ce(ceKey);
    memory.consecutiveErrors = 0;
    memory.backedOffUntilMs = 0;
  }

  pilotEnded(ceKey: string, queueKey: string, outcome: PilotOutcome): void {
    const now = this.#clock.nowMs();
    if (outcome === 'missed') {
      this.#ce(ceKey).missedAtMs.push(now);
      return;
    }
    const queue = this.#queue(queueKey);
    if (outcome === 'useful') {
      queue.emptyInARow = 0;
      queue.backoffs = 0;
      queue.backedOffUntilMs = 0;
      return;
    }
    queue.emptyInARow += 1;
    const { threshold, initialMs, maxMs } = this.#options.emptyPilots;
    if (queue.emptyInARow >= threshold) {
      queue.backoffs += 1;
      queue.emptyInARow = 0;
      queue.backedOffUntilMs = now + Math.min(maxMs, initialMs * 2 ** (queue.backoffs - 1));
    }
  }

  /** What holds the queue back now, in words (empty: nothing). */
  activeFor(ceKey: string, queueKey: string): string[] {
    const now = this.#clock.nowMs();
    const reasons: string[] = [];
    const ce = this.#ces.get(ceKey);
    if (ce && ce.backedOffUntilMs > now) {
      reasons.push(
        `CE backoff after ${ce.consecutiveErrors} error(s) until ${new Date(ce.backedOffUntilMs).toISOString()} (last: ${ce.lastError ?? '?'})`,
      );
    }
    const missed = this.#missedInWindow(ceKey);
    if (missed >= this.#options.missedPilots.max) {
      reasons.push(
        `${missed} missed pilot(s) within ${this.#options.missedPilots.windowMs / 1000} s (max ${this.#options.missedPilots.max})`,
      );
    }
    const queue = this.#queues.get(queueKey);
    if (queue && queue.backedOffUntilMs > now) {
      reasons.push(
        `pilots matched nothing ${this.#options.emptyPilots.threshold}× in a row: backoff until ${new Date(queue.backedOffUntilMs).toISOString()}`,
      );
    }
    return reasons;
  }

  #missedInWindow(ceKey: string): number {
    const ce = this.#ces.get(ceKey);
    if (!ce) return 0;
    const since = this.#clock.nowMs() - this.#options.missedPilots.windowMs;
    ce.missedAtMs = ce.missedAtMs.filter((at) => at > since);
    return ce.missedAtMs.length;
  }

  ceState(ceKey: string): CeThrottleState {
    const ce = this.#ce(ceKey);
    const now = this.#clock.nowMs();
    const missed = this.#missedInWindow(ceKey);
    const { windowMs, max } = this.#options.missedPilots;
    // Throttled until enough missed pilots leave the window to bring the count under max.
    const release = missed >= max ? (ce.missedAtMs[missed - max] as number) + windowMs : null;
    return {
      consecutiveErrors: ce.consecutiveErrors,
      backedOffUntilMs: ce.backedOffUntilMs > now ? ce.backedOffUntilMs : null,
      lastError: ce.lastError,
      missedInWindow: missed,
      throttledUntilMs: release,
    };
  }
}
