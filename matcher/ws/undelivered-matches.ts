/**
 * Matches that never reached their pilot, or that it lost. A claim is committed before its frame is
 * sent; when the connection dies in between (the pilot's network, or the replica holding it killed),
 * the job sits Matched to a pilot that does not know it. Three moments tell:
 *
 *  - the pilot reconnects (to any replica) and lists in its hello the attempts it holds: a job Matched
 *    to it that is not listed never arrived — the old connection is closed, no frame can still come;
 *  - the session that claimed finds its socket closed when it goes to send the frame;
 *  - a heartbeat, sent after the match had reached the pilot, does not list it (sent-matches.ts).
 *
 * Either way the attempt ends and the job waits again at once (no hold: it was never the job's
 * fault). A pilot that never comes back is the fault sweeper's: it gives the job back once the pilot
 * has been gone for the reconnect grace. The new attempt counts toward the job's attempts like any
 * rescheduling, so a job can never bounce for ever.
 */
import { isoNow, type Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/logger.ts';
import type { JobStore } from '../store/job-store.ts';
import { attemptKey } from '../../shared/job/attempt-key.ts';

export interface UndeliveredMatchesDeps {
  store: JobStore;
  clock: Clock;
  logger: Logger;
  maxAttempts: number;
  /** Told which TQs got jobs back (to refresh the index and wake parked offers, on every replica). */
  jobsReturned(taskQueueIds: number[]): Promise<void>;
}

const SOURCE = 'Matcher';
/** More Matched jobs than this for one pilot is not a thing; the reconciliation looks no further. */
const MAX_MATCHED_PER_PILOT = 1_000;

export class UndeliveredMatches {
  readonly #deps: UndeliveredMatchesDeps;

  constructor(deps: UndeliveredMatchesDeps) {
    this.#deps = deps;
  }

  /** After a reconnect: gives back the pilot's Matched jobs it does not hold. Returns how many. */
  async reconcile(pilotId: string, holding: readonly { jobId: number; attempt: number }[]): Promise<number> {
    const held = new Set(holding.map((job) => attemptKey(job.jobId, job.attempt)));
    const page = await this.#deps.store.searchJobs({
      pilotIds: [pilotId],
      statuses: ['Matched'],
      sort: [{ column: 'id', direction: 'asc' }],
      page: 1,
      perPage: MAX_MATCHED_PER_PILOT,
    });
    const lost = page.jobs.filter((job) => !held.has(attemptKey(job.id, job.attempt)));
    for (const job of lost) await this.#endAttempt(job.id, job.attempt, 'Match lost: the pilot never received it');
    if (lost.length > 0) await this.#release();
    return lost.length;
  }

  /**
   * A heartbeat of the pilot, sent after these matches had reached it, does not list them: the pilot
   * lost them. Those still Matched to it at that attempt end; any other (it reported on them since,
   * another replica already gave them back) is left alone. Returns how many were given back.
   */
  async notHeld(pilotId: string, lost: readonly { jobId: number; attempt: number }[]): Promise<number> {
    let given = 0;
    for (const { jobId, attempt } of lost) {
      const job = await this.#deps.store.getJob(jobId);
      if (job?.status !== 'Matched' || job.attempt !== attempt || job.pilotId !== pilotId) continue;
      await this.#endAttempt(jobId, attempt, 'Match lost: the pilot does not hold it');
      given += 1;
    }
    if (given > 0) await this.#release();
    return given;
  }

  /** The session claimed a job but its pilot's socket is already closed. */
  async notSent(jobId: number, attempt: number): Promise<void> {
    await this.#endAttempt(jobId, attempt, 'Match not sent: the pilot connection closed');
    await this.#release();
  }

  async #endAttempt(jobId: number, attempt: number, reason: string): Promise<void> {
    const at = isoNow(this.#deps.clock);
    const outcome = await this.#deps.store.rescheduleJob(jobId, attempt, {
      at,
      reason,
      holdUntil: at,
      maxAttempts: this.#deps.maxAttempts,
      source: SOURCE,
      onLimit: 'fail',
      allowFinished: false,
    });
    this.#deps.logger.warn({ jobId, attempt, outcome: outcome.kind, reason }, 'undelivered match given back');
  }

  async #release(): Promise<void> {
    const released = await this.#deps.store.releaseRescheduled(isoNow(this.#deps.clock));
    if (released.jobs > 0) await this.#deps.jobsReturned(released.taskQueueIds);
  }
}
