/**
 * The pilot's main loop: offer what the slot has left, run every match, re-offer, report, and stop
 * when idle, drained or out of time. It owns no I/O of its own: the matcher link, the job runner,
 * the slot, the clock and the logger are injected, so tests drive it with fakes.
 *
 * Offer rules (the matcher relies on them):
 *  - at most one outstanding offer; `matchSeq` is the number of matches received so far on this
 *    connection, so after every match the outstanding offer is stale and a fresh one is sent (if a
 *    core is free);
 *  - when a job ends while an offer is outstanding, a new offer (new id) supersedes it;
 *  - a match is always run, even one that arrives after `offer.cancel` (it fits: resources only grew);
 *  - an offer of more than one free core may be filled by several jobs at once (`maxJobs`: one per
 *    free core): they come as match frames in a row, each but the last saying how many follow, and the
 *    next offer waits for the last of them.
 *
 * Shutdown: stop offering, cancel the outstanding offer and wait for `offer.cancelled`, let the
 * running jobs finish (or kill them on `terminate`), wait for every report to be acked, say bye with
 * the reason and the counts. A drain (SIGTERM, a drain file, the matcher's drain command) gives running
 * jobs a grace time, never beyond the slot's end; jobs still running then are killed. Running out of
 * time left lets running jobs finish (their wall times fit the slot) up to the slot's end.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { isoNow, type Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { PilothouseError } from '../shared/errors.ts';
import { MAX_JOBS_PER_OFFER, type MatchedJob, type OfferResources } from '../shared/protocol/messages.ts';
import type { JobOutcome, JobRunnerPort, RunningJob } from './job-runner.ts';
import type { HeartbeatNode, LinkInbound, MatcherLink, WelcomeMessage } from './matcher-link.ts';
import type { Slot } from './slot.ts';
import { NamedTimers } from './timers.ts';
import { attemptKey } from '../shared/job/attempt-key.ts';

export interface LoopConfig {
  idleTimeoutMs: number;
  /** How long a cancelled offer may stay unconfirmed before the pilot stops waiting. */
  offerCancelTimeoutMs: number;
  /** How long the pilot waits for its last reports to be acked before exiting anyway. */
  finalFlushTimeoutMs: number;
  /** With a finite time left, an unanswered offer is renewed this often so its wallTimeSec stays true. */
  offerRefreshMs: number;
  /** After a drain, running jobs have this long to finish before they are killed (absent: no limit). */
  drainGraceMs?: number;
  /** Jobs still running this close to the slot's end are killed, so that their reports get out. */
  slotEndMarginMs?: number;
}

export interface PilotLoopDeps {
  link: MatcherLink;
  runner: JobRunnerPort;
  slot: Slot;
  clock: Clock;
  logger: Logger;
  config: LoopConfig;
  newOfferId?: () => string;
  /** The node's load and free disk for heartbeats (absent: jobs only). */
  nodeStatus?: () => HeartbeatNode;
}

/**
 * Why the pilot stops: `idle` (no work for the idle timeout), `drained` (SIGTERM), `drain-file` (the
 * site's drain file appeared), `drain-command` (an administrator drained it through the matcher),
 * `time-left` (too little time left for any job), `terminated` (second SIGTERM), `link-failed`.
 */
export type ExitReason =
  'idle' | 'drained' | 'drain-file' | 'drain-command' | 'time-left' | 'terminated' | 'link-failed';
export type DrainReason = Extract<ExitReason, 'drained' | 'drain-file' | 'drain-command'>;

export interface PilotExit {
  reason: ExitReason;
  /** Set when the matcher link failed for good (auth refused, protocol version). */
  error?: PilothouseError;
  /** Reports that were never acked (the matcher was gone at the end). */
  undeliveredReports: number;
  jobsRun: number;
  /** Jobs that ended Failed (whatever the cause). */
  jobsFailed: number;
  everConnected: boolean;
}

export interface PilotEvents {
  'offer-sent': [offer: { offerId: string; matchSeq: number; resources: OfferResources; maxJobs: number }];
  'offer-parked': [offer: { offerId: string }];
  'job-started': [job: { jobId: number; attempt: number; cores: number }];
  'job-finished': [job: { jobId: number; attempt: number; outcome: JobOutcome }];
  draining: [info: { reason: ExitReason }];
  exit: [exit: PilotExit];
}

export const UNREADABLE_JOB_MINOR_STATUS = 'Job description not understood by the pilot';

type OutstandingOffer = { offerId: string; state: 'sent' | 'parked' | 'cancelling' };

export class PilotLoop extends EventEmitter<PilotEvents> {
  readonly #link: MatcherLink;
  readonly #runner: JobRunnerPort;
  readonly #slot: Slot;
  readonly #clock: Clock;
  readonly #config: LoopConfig;
  readonly #newOfferId: () => string;
  readonly #baseLogger: Logger;
  #logger: Logger;
  #phase: 'idle' | 'running' | 'draining' | 'stopping' = 'idle';
  #reason: ExitReason = 'idle';
  #fatal: PilothouseError | undefined;
  #offer: OutstandingOffer | null = null;
  #matchSeq = 0;
  /** Match frames of the last offer still to come (its earlier ones said so). */
  #matchesFollowing = 0;
  readonly #jobs = new Map<string, RunningJob>();
  #jobsRun = 0;
  #jobsFailed = 0;
  #everConnected = false;
  #lastBusyMs: number;
  readonly #timers = new NamedTimers<'retry' | 'idle' | 'cancel' | 'flush' | 'heartbeat' | 'refresh' | 'grace'>();
  readonly #nodeStatus: (() => HeartbeatNode) | undefined;
  #resolveExit: (exit: PilotExit) => void = () => {};
  readonly #exited: Promise<PilotExit>;

  constructor(deps: PilotLoopDeps) {
    super();
    this.#link = deps.link;
    this.#runner = deps.runner;
    this.#slot = deps.slot;
    this.#clock = deps.clock;
    this.#baseLogger = deps.logger;
    this.#logger = deps.logger;
    this.#config = deps.config;
    this.#newOfferId = deps.newOfferId ?? (() => randomUUID());
    this.#nodeStatus = deps.nodeStatus;
    this.#lastBusyMs = deps.clock.nowMs();
    this.#exited = new Promise((resolve) => {
      this.#resolveExit = resolve;
    });
  }

  /** Starts the loop; resolves when the pilot is done (never rejects). */
  run(): Promise<PilotExit> {
    if (this.#phase !== 'idle') return this.#exited;
    this.#phase = 'running';
    this.#link.on('connected', this.#onConnected);
    this.#link.on('disconnected', this.#onDisconnected);
    this.#link.on('message', this.#onMessage);
    this.#link.on('drained', this.#checkDone);
    this.#link.on('fatal', this.#onFatal);
    this.#link.setHeldJobs(() => [...this.#jobs.values()].map((job) => ({ jobId: job.jobId, attempt: job.attempt })));
    this.#link.start();
    this.#armIdleTimer();
    return this.#exited;
  }

  /** No new work; running jobs finish (within the drain grace time). SIGTERM, drain file, drain command. */
  drain(reason: DrainReason = 'drained'): void {
    this.#beginDrain(reason);
  }

  /** Second SIGTERM: running jobs are killed too. */
  terminate(): void {
    this.#beginDrain('terminated');
    this.#reason = 'terminated';
    for (const job of this.#jobs.values()) job.kill('pilot-terminated');
  }

  /** Whether the pilot stopped taking work. */
  get draining(): boolean {
    return this.#phase !== 'running' && this.#phase !== 'idle';
  }

  get runningJobs(): number {
    return this.#jobs.size;
  }

  readonly #onConnected = (welcome: WelcomeMessage): void => {
    this.#everConnected = true;
    this.#logger = this.#baseLogger.child({ pilotId: welcome.pilotId });
    this.#offer = null; // offers die with the connection they were made on
    this.#matchesFollowing = 0;
    // The matcher counts matches per connection and drops offers whose matchSeq is behind its count;
    // counting per connection here too keeps that check exact (a higher count would let stale offers in).
    this.#matchSeq = 0;
    this.#timers.every('heartbeat', welcome.heartbeatIntervalMs, () => void this.#sendHeartbeat());
    if (this.#phase === 'running') this.#maybeOffer();
    else this.#checkDone();
  };

  readonly #onDisconnected = (): void => {
    // The heartbeat timer keeps going: the link keeps the latest sample and sends it on reconnect.
    this.#timers.clear('retry');
    this.#timers.clear('refresh');
    this.#offer = null;
    this.#matchesFollowing = 0;
    this.#checkDone();
  };

  readonly #onFatal = (error: PilothouseError): void => {
    this.#fatal = error;
    this.#offer = null;
    if (this.#phase === 'running') this.#beginDrain('link-failed');
    this.#reason = 'link-failed';
    // Nothing can be reported any more: the matcher will find these jobs stalled and reschedule them.
    for (const job of this.#jobs.values()) job.kill('pilot-terminated');
    this.#checkDone();
  };

  readonly #onMessage = (message: LinkInbound): void => {
    switch (message.type) {
      case 'match':
        this.#onMatch(message.offerId, message.matchSeq, message.job, message.following ?? 0);
        return;
      case 'match.unreadable':
        // The attempt is failed at once, not left Matched; the match is counted as the matcher did.
        this.#link.report({
          jobId: message.jobId,
          attempt: message.attempt,
          at: isoNow(this.#clock),
          status: 'Failed',
          minorStatus: UNREADABLE_JOB_MINOR_STATUS,
          applicationStatus: message.reason,
        });
        this.#onMatch(message.offerId, message.matchSeq, null, message.following);
        return;
      case 'parked':
        if (this.#offer?.offerId === message.offerId && this.#offer.state === 'sent') {
          this.#offer.state = 'parked';
          this.#logger.debug({ offerId: message.offerId }, 'offer parked');
          this.emit('offer-parked', { offerId: message.offerId });
        }
        return;
      case 'no-match':
        if (this.#offer?.offerId !== message.offerId) return;
        this.#offer = null;
        if (this.#phase === 'running') this.#timers.once('retry', message.retryAfterMs, () => this.#maybeOffer());
        this.#checkDone();
        return;
      case 'offer.cancelled':
        if (this.#offer?.offerId !== message.offerId) return;
        this.#offer = null;
        this.#timers.clear('cancel');
        this.#logger.debug({ offerId: message.offerId }, 'offer cancelled');
        this.#checkDone();
        return;
      case 'commands':
        for (const command of message.commands) {
          const job = this.#jobs.get(attemptKey(command.jobId, command.attempt));
          if (job === undefined) {
            this.#logger.warn(
              { jobId: command.jobId, attempt: command.attempt, command: command.command },
              'command for unknown job ignored',
            );
            continue;
          }
          job.kill('command');
        }
        return;
      case 'drain':
        this.#logger.info({ reason: message.reason }, 'drain requested by the matcher');
        this.#beginDrain('drain-command');
        return;
      case 'error':
        return; // already logged by the link; nothing here depends on it
    }
  };

  #onMatch(offerId: string, matchSeq: number, job: MatchedJob | null, following: number): void {
    this.#matchSeq = Math.max(this.#matchSeq + 1, matchSeq);
    this.#matchesFollowing = following;
    // The outstanding offer was built with an older matchSeq: it is consumed or stale either way.
    if (this.#offer !== null && (this.#offer.offerId === offerId || this.#offer.state !== 'cancelling')) {
      this.#offer = null;
      this.#timers.clear('cancel');
    }
    if (job !== null) this.#startJob(job);
    this.#maybeOffer();
    this.#checkDone();
  }

  #startJob(job: MatchedJob): void {
    const key = attemptKey(job.jobId, job.attempt);
    const logger = this.#logger.child({ jobId: job.jobId, attempt: job.attempt });
    if (this.#jobs.has(key)) {
      logger.warn('duplicate match ignored');
      return;
    }
    // The matcher's memory grant when it sends one, else what the job asked for.
    const req = job.description.requirements;
    const holding = {
      cores: job.cores,
      memoryMB: job.memoryMB ?? (req.memoryMB ?? 0) + (req.memoryPerCoreMB ?? 0) * job.cores,
      gpuIds: job.gpuIds ?? [],
      diskMB: req.diskMB ?? 0,
    };
    if (!this.#slot.allocate(key, holding))
      logger.warn({ ...holding, free: this.#slot.free() }, 'match exceeds free resources');
    this.#timers.clear('idle');
    this.#jobsRun += 1;
    const running = this.#runner.start(
      job,
      (update) => this.#link.report({ jobId: job.jobId, attempt: job.attempt, at: isoNow(this.#clock), ...update }),
      this.#logger,
    );
    this.#jobs.set(key, running);
    logger.info(
      { cores: job.cores, memoryMB: holding.memoryMB, gpus: holding.gpuIds, matchSeq: this.#matchSeq },
      'job matched',
    );
    this.emit('job-started', { jobId: job.jobId, attempt: job.attempt, cores: job.cores });
    if (this.#reason === 'terminated' || this.#reason === 'link-failed') running.kill('pilot-terminated');
    void running.done.then((outcome) => this.#onJobDone(key, job, outcome));
  }

  #onJobDone(key: string, job: MatchedJob, outcome: JobOutcome): void {
    this.#jobs.delete(key);
    if (outcome.status === 'Failed') this.#jobsFailed += 1;
    this.#slot.release(key);
    this.#lastBusyMs = this.#clock.nowMs();
    this.emit('job-finished', { jobId: job.jobId, attempt: job.attempt, outcome });
    if (this.#phase === 'running') {
      // Resources grew: whatever was outstanding (or waiting for a retry) undersells the slot.
      const outstanding = this.#offer !== null || this.#timers.has('retry');
      if (outstanding) this.#maybeOffer(true);
      else this.#maybeOffer();
      this.#armIdleTimer();
    }
    this.#checkDone();
  }

  #maybeOffer(supersede = false): void {
    if (this.#phase !== 'running' || !this.#link.connected) return;
    if (this.#offer?.state === 'cancelling') return;
    // The rest of the last offer's matches are on their way: an offer now would be stale on arrival.
    if (this.#matchesFollowing > 0) return;
    if (!supersede && (this.#offer !== null || this.#timers.has('retry'))) return;
    const verdict = this.#slot.offer(this.#clock.nowMs());
    if (verdict.kind === 'time-up') {
      this.#logger.info({ timeLeftSec: verdict.timeLeftSec }, 'time left too short');
      this.#beginDrain('time-left');
      return;
    }
    if (verdict.kind === 'full') return;
    this.#timers.clear('retry');
    const offerId = this.#newOfferId();
    // One job per free core at most: every job takes at least one.
    const maxJobs = Math.max(1, Math.min(MAX_JOBS_PER_OFFER, verdict.resources.cores));
    if (!this.#link.sendOffer(offerId, this.#matchSeq, verdict.resources, maxJobs)) return;
    this.#offer = { offerId, state: 'sent' };
    this.#timers.clear('refresh');
    if (verdict.resources.wallTimeSec !== null) {
      this.#timers.once('refresh', this.#config.offerRefreshMs, () => {
        if (this.#offer?.offerId === offerId) this.#maybeOffer(true);
      });
    }
    this.#logger.debug({ offerId, matchSeq: this.#matchSeq, resources: verdict.resources, maxJobs }, 'offer sent');
    this.emit('offer-sent', { offerId, matchSeq: this.#matchSeq, resources: verdict.resources, maxJobs });
  }

  #beginDrain(reason: ExitReason): void {
    if (this.#phase !== 'running') return;
    this.#phase = 'draining';
    this.#reason = reason;
    this.#logger.info({ reason, runningJobs: this.#jobs.size }, 'draining');
    this.emit('draining', { reason });
    this.#timers.clear('retry');
    this.#timers.clear('idle');
    this.#timers.clear('refresh');
    this.#armGraceTimer(reason);
    if (this.#offer !== null && this.#offer.state !== 'cancelling') {
      if (this.#link.connected && this.#link.cancelOffer(this.#offer.offerId)) {
        this.#offer.state = 'cancelling';
        this.#timers.once('cancel', this.#config.offerCancelTimeoutMs, () => {
          this.#logger.warn({ offerId: this.#offer?.offerId }, 'offer cancel unconfirmed');
          this.#offer = null;
          this.#checkDone();
        });
      } else {
        this.#offer = null;
      }
    }
    this.#checkDone();
  }

  /**
   * Jobs still running when the grace time is over are killed: after a drain, the configured grace
   * (never beyond the slot's end); after running out of time, the slot's end itself.
   */
  #armGraceTimer(reason: ExitReason): void {
    if (this.#jobs.size === 0 || reason === 'terminated' || reason === 'link-failed' || reason === 'idle') return;
    const endsAt = this.#slot.endsAtMs();
    const untilEndMs = endsAt === null ? null : endsAt - this.#clock.nowMs() - (this.#config.slotEndMarginMs ?? 0);
    const drainGrace = reason === 'time-left' ? undefined : this.#config.drainGraceMs;
    const candidates = [untilEndMs, drainGrace].filter((ms): ms is number => typeof ms === 'number');
    if (candidates.length === 0) return;
    const graceMs = Math.max(0, Math.min(...candidates));
    this.#logger.info(
      { reason, graceSec: Math.round(graceMs / 1000), runningJobs: this.#jobs.size },
      'running jobs may finish within the grace time',
    );
    this.#timers.once('grace', graceMs, () => {
      if (this.#jobs.size === 0) return;
      this.#logger.warn({ runningJobs: this.#jobs.size }, 'grace time over: killing running jobs');
      for (const job of this.#jobs.values()) job.kill('drain-timeout');
    });
  }

  readonly #checkDone = (): void => {
    if (this.#phase !== 'draining' || this.#jobs.size > 0 || this.#offer !== null) return;
    if (this.#fatal === undefined && this.#link.pendingReports > 0) {
      if (!this.#timers.has('flush')) {
        this.#timers.once('flush', this.#config.finalFlushTimeoutMs, () => {
          this.#logger.error({ undeliveredReports: this.#link.pendingReports }, 'final reports not delivered');
          void this.#finish();
        });
      }
      return;
    }
    void this.#finish();
  };

  async #finish(): Promise<void> {
    if (this.#phase === 'stopping') return;
    this.#phase = 'stopping';
    this.#timers.clearAll();
    this.#link.off('connected', this.#onConnected);
    this.#link.off('disconnected', this.#onDisconnected);
    this.#link.off('message', this.#onMessage);
    this.#link.off('drained', this.#checkDone);
    this.#link.off('fatal', this.#onFatal);
    // Logged before the bye, so that the line is shipped with the rest of the pilot's log.
    this.#logger.info(
      {
        reason: this.#reason,
        jobsRun: this.#jobsRun,
        jobsFailed: this.#jobsFailed,
        undeliveredReports: this.#link.pendingReports,
      },
      'pilot finished',
    );
    await this.#link.close(this.#reason, { jobsRun: this.#jobsRun, jobsFailed: this.#jobsFailed });
    const exit: PilotExit = {
      reason: this.#reason,
      undeliveredReports: this.#link.pendingReports,
      jobsRun: this.#jobsRun,
      jobsFailed: this.#jobsFailed,
      everConnected: this.#everConnected,
      ...(this.#fatal === undefined ? {} : { error: this.#fatal }),
    };
    this.emit('exit', exit);
    this.#resolveExit(exit);
  }

  #armIdleTimer(): void {
    this.#timers.clear('idle');
    if (this.#phase !== 'running' || this.#jobs.size > 0) return;
    const remainingMs = this.#config.idleTimeoutMs - (this.#clock.nowMs() - this.#lastBusyMs);
    this.#timers.once('idle', remainingMs, () => {
      if (this.#jobs.size > 0) return;
      if (this.#clock.nowMs() - this.#lastBusyMs >= this.#config.idleTimeoutMs) this.#beginDrain('idle');
      else this.#armIdleTimer();
    });
  }

  async #sendHeartbeat(): Promise<void> {
    const jobs = await Promise.all([...this.#jobs.values()].map((job) => job.usage().catch(() => null)));
    // The count of the connection the heartbeat leaves on. The link sends it only if the list covers
    // all the pilot holds then: a job matched while sampling, or whose sample failed, voids it.
    this.#link.heartbeat(
      jobs.filter((job) => job !== null),
      this.#nodeStatus?.(),
      this.#matchSeq,
    );
  }
}
