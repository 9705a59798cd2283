/**
 * Looks after jobs whose pilot went quiet (DIRAC's StalledJobAgent, with the design's rescheduling):
 *
 *  1. Running or Completing with no heartbeat or status for `stalledAfterSec` → Stalled. A later
 *     heartbeat of the same attempt brings it back to Running.
 *  2. Stalled, and its pilot is no longer connected (after `reconnectGraceSec` of silence: a pilot
 *     dropped for not answering pings is Stalled at once, and may come back in that time), or it
 *     stayed Stalled `failStalledAfterSec` more →
 *     the attempt ends (a kill is queued for it) and a new one starts, held as Rescheduled for
 *     `rescheduleDelaysSec[n]` after the n-th rescheduling; once `maxAttempts` are used, Failed.
 *  3. Matched, and its pilot is no longer connected (after the same grace) → the same: it died between
 *     taking the match and starting the job, so it will never report. Matched for `matchedTimeoutSec`
 *     without starting while its pilot stays connected → the same (the pilot never ran it).
 *  4. Rescheduled jobs whose hold is over → Waiting, and parked offers are woken for them.
 *
 * Every step goes through the store with the attempt it saw, so a job that moved meanwhile (a late
 * heartbeat, a kill) is left alone, and several matchers sharing a store never double an attempt.
 */
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/logger.ts';
import type { HeldJob, JobStore } from '../store/job-store.ts';

export interface FaultSweeperOptions {
  stalledAfterSec: number;
  failStalledAfterSec: number;
  matchedTimeoutSec: number;
  /** Attempts a job may have in all (DIRAC: MaxRescheduling 3 → 4 attempts). */
  maxAttempts: number;
  /**
   * A Stalled job whose pilot is gone is rescheduled once it has been silent this long (or
   * `stalledAfterSec`, if shorter): a pilot dropped for not answering pings may come back and keep it.
   */
  reconnectGraceSec: number;
  /** Hold before a rescheduled job waits again, by how many times it was rescheduled (the last repeats). */
  rescheduleDelaysSec: readonly number[];
}

/** DIRAC's figures (MatchedTime, MaxRescheduling, RescheduleDelays); a stall is 20 missed 30 s heartbeats. */
export const DEFAULT_FAULT_SWEEPER_OPTIONS: FaultSweeperOptions = {
  stalledAfterSec: 600,
  failStalledAfterSec: 3 * 3600,
  matchedTimeoutSec: 7200,
  reconnectGraceSec: 90,
  maxAttempts: 4,
  rescheduleDelaysSec: [60, 180, 300, 600],
};

export interface SweepReport {
  stalled: number;
  rescheduled: number;
  failed: number;
  released: number;
}

export interface FaultSweeperDeps {
  store: JobStore;
  clock: Clock;
  logger: Logger;
  /** Whether a pilot is connected now (to any matcher sharing the store, as far as this one knows). */
  isPilotConnected(pilotId: string): Promise<boolean>;
  /** Told which TQs got jobs back (to refresh the index and wake parked offers). */
  jobsReturned(taskQueueIds: number[]): Promise<void>;
  options: FaultSweeperOptions;
}

const SOURCE = 'FaultSweeper';

export class FaultSweeper {
  readonly #deps: FaultSweeperDeps;

  constructor(deps: FaultSweeperDeps) {
    this.#deps = deps;
  }

  async sweep(): Promise<SweepReport> {
    const { store, clock, options } = this.#deps;
    const nowMs = clock.nowMs();
    const at = new Date(nowMs).toISOString();
    const ago = (sec: number) => new Date(nowMs - sec * 1000).toISOString();
    const report: SweepReport = { stalled: 0, rescheduled: 0, failed: 0, released: 0 };
    // How long a job's silence must last once its pilot is gone: it may reconnect and keep the job.
    const pilotGraceSec = Math.min(options.reconnectGraceSec, options.stalledAfterSec);

    for (const job of await store.findHeldJobs(['Running', 'Completing'], ago(options.stalledAfterSec))) {
      if (await store.markStalled(job.id, job.attempt, at)) {
        report.stalled += 1;
        this.#deps.logger.warn({ jobId: job.id, attempt: job.attempt, pilotId: job.pilotId }, 'job stalled');
      }
    }

    for (const job of await store.findHeldJobs(['Stalled'], at)) {
      const { pilotGone, silentSec } = await this.#silence(job, nowMs);
      if (!pilotGone && silentSec < options.stalledAfterSec + options.failStalledAfterSec) continue;
      if (pilotGone && silentSec < pilotGraceSec) continue;
      const reason = pilotGone ? 'Job stalled: pilot not running' : `Stalling for more than ${silentSec} sec`;
      await this.#endAttempt(job.id, job.attempt, reason, at, nowMs, report);
    }

    // A live pilot reports Running as soon as it has its match, so a Matched job is looked at after the
    // grace a gone pilot gets (not only after the long matched timeout).
    for (const job of await store.findHeldJobs(['Matched'], ago(Math.min(pilotGraceSec, options.matchedTimeoutSec)))) {
      const { pilotGone, silentSec } = await this.#silence(job, nowMs);
      if (!pilotGone && silentSec < options.matchedTimeoutSec) continue;
      const reason = pilotGone
        ? 'Job matched: pilot not running'
        : `Matched for more than ${options.matchedTimeoutSec} sec`;
      await this.#endAttempt(job.id, job.attempt, reason, at, nowMs, report);
    }

    const released = await store.releaseRescheduled(at);
    if (released.jobs > 0) {
      report.released = released.jobs;
      await this.#deps.jobsReturned(released.taskQueueIds);
    }
    return report;
  }

  /** Whether a held job's pilot is gone (from every replica), and how long the job has been silent. */
  async #silence(job: HeldJob, nowMs: number): Promise<{ pilotGone: boolean; silentSec: number }> {
    const pilotGone = job.pilotId === null || !(await this.#deps.isPilotConnected(job.pilotId));
    return { pilotGone, silentSec: Math.floor((nowMs - Date.parse(job.lastSignAt)) / 1000) };
  }

  async #endAttempt(
    jobId: number,
    attempt: number,
    reason: string,
    at: string,
    nowMs: number,
    report: SweepReport,
  ): Promise<void> {
    const { options } = this.#deps;
    const delays = options.rescheduleDelaysSec;
    const delaySec = delays[Math.min(attempt - 1, delays.length - 1)] ?? 0;
    const outcome = await this.#deps.store.rescheduleJob(jobId, attempt, {
      at,
      reason,
      holdUntil: new Date(nowMs + delaySec * 1000).toISOString(),
      maxAttempts: options.maxAttempts,
      source: SOURCE,
      onLimit: 'fail',
      allowFinished: false,
    });
    const logger = this.#deps.logger;
    if (outcome.kind === 'rescheduled') {
      report.rescheduled += 1;
      logger.warn(
        { jobId, attempt, nextAttempt: outcome.attempt, reason, holdUntil: outcome.holdUntil },
        'job rescheduled',
      );
    } else if (outcome.kind === 'failed') {
      report.failed += 1;
      logger.warn({ jobId, attempt, reason }, 'job failed: no attempts left');
    }
  }
}
