/**
 * One pilot's WebSocket session. Frames are handled strictly one after another (a promise chain), and
 * serving a parked offer runs in the same chain, so a pilot's offers, reports and pushed matches never
 * interleave. A pilot may only report on jobs it holds, and only for their current attempt.
 */
import type { WebSocket } from 'ws';
import { ERROR_CODES, PilothouseError } from '../../shared/errors.ts';
import { toAnswerError } from '../store/store-errors.ts';
import { isoNow, type Clock } from '../../shared/clock.ts';
import type { Principal } from '../../shared/auth/claims.ts';
import type { Logger } from '../../shared/logger.ts';
import {
  encodeMessage,
  parsePilotMessage,
  type JobCommand,
  type MatcherMessageBody,
  type PilotMessage,
} from '../../shared/protocol/messages.ts';
import { assertPilotMayBe, canPilotReportOn, checkPilotMessage } from '../auth/policy.ts';
import type { TokenService } from '../auth/tokens.ts';
import type { Offer } from '../matching/fit.ts';
import type { Match, MatchService } from '../matching/match-service.ts';
import type { JobStore } from '../store/job-store.ts';
import type { JobUsageSample, PilotActivityStore } from '../store/pilot-activity-store.ts';
import type { PilotStore } from '../store/pilot-store.ts';
import type { ClusterPresence } from '../cluster/presence.ts';
import type { CommandReceiver, PilotRegistry } from './pilot-registry.ts';
import { statusReportKey } from './report-key.ts';
import type { UndeliveredMatches } from './undelivered-matches.ts';
import { SentMatches } from './sent-matches.ts';
import type { ConnectionLiveness } from './connection-liveness.ts';
import { FrameRateLimit, type FrameRateOptions } from './frame-rate-limit.ts';

export interface PilotSessionDeps {
  store: JobStore;
  /** Records which replica holds this pilot (the fault sweeper of any replica asks). */
  presence: ClusterPresence;
  /** Pilot records: hello, bye and disconnects join what the site director says about the pilot. */
  pilots: PilotStore;
  /** Pilot logs, drain requests, exit records, node and job usage from heartbeats. */
  activity: PilotActivityStore;
  matchService: MatchService;
  registry: PilotRegistry;
  tokens: TokenService;
  clock: Clock;
  logger: Logger;
  heartbeatIntervalMs: number;
  /** Job tokens outlive the job's wall time by this much; the server also kills them when the attempt ends. */
  jobTokenGraceSec: number;
  /** Gives back matches the pilot never received (see undelivered-matches.ts). */
  undelivered: UndeliveredMatches;
  /** Pings the connection and drops it when it stops answering (see connection-liveness.ts). */
  liveness: ConnectionLiveness;
  /** Frames per connection per second, and the burst allowed after a quiet spell (see limits.ts). */
  frameRate: FrameRateOptions;
  /** Counts frames in and out (for /metrics). */
  metrics?: { frameIn(): void; frameOut(): void };
  /** The WebSocket server's frame limit (enforced by ws, which closes with 1009); for the log. */
  maxFrameBytes: number;
  /** Real elapsed time for the frame rate (the matcher's clock may be moved by tests). */
  monotonicClock: Clock;
  /** True once the matcher is stopping: the connections it closes itself leave their jobs alone. */
  stopping(): boolean;
}

/** Frames received and not yet handled above which the socket stops being read. */
const MAX_QUEUED_FRAMES = 256;

const MAX_PROTOCOL_VIOLATIONS = 10;
/** The history's source for jobs stalled because their pilot's connection stopped answering or closed. */
const STALLED_BY = 'PilotLiveness';
/** How long an open session trusts its last credential check (revocations reach it within this). */
export const SESSION_RECHECK_MS = 1_000;

type Hello = Extract<PilotMessage, { type: 'hello' }>;

/** What the session needs of the socket under the WebSocket: holding writes back for a moment. */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

/** One attempt's reports, as a job.status frame or an entry of job.statuses carries them. */
type AttemptReports = Omit<Extract<PilotMessage, { type: 'job.status' }>, 'type' | 'v' | 'ref'>;

export class PilotSession implements CommandReceiver {
  readonly #socket: WebSocket;
  readonly #principal: Principal;
  readonly #transport: Corkable | null;
  #corked = false;
  /** Pipelined status reports not yet committed (see #onJobStatus). */
  readonly #reportsInFlight = new Set<Promise<void>>();
  readonly #deps: PilotSessionDeps;
  #logger: Logger;
  #hello: Hello | null = null;
  #pilotId = '';
  #matchesSent = 0;
  /** Matches sent on this connection that no heartbeat has judged yet (see sent-matches.ts). */
  readonly #sentMatches = new SentMatches();
  #violations = 0;
  #authorizedUntilMs = 0;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  #saidBye = false;
  readonly #frameRate: FrameRateLimit;
  #queuedFrames = 0;
  /** Over its frame rate: nothing more it sends is handled. */
  #cutOff = false;

  /**
   * `transport`: the TCP (or TLS) socket under `socket`. Frames sent in one turn of the event loop
   * (the acks of a group commit, a match) leave in one write instead of one system call each.
   */
  constructor(socket: WebSocket, principal: Principal, deps: PilotSessionDeps, transport?: Corkable) {
    this.#socket = socket;
    this.#transport = transport ?? null;
    this.#principal = principal;
    this.#deps = deps;
    this.#logger = deps.logger.child({ vo: principal.vo });
    this.#frameRate = new FrameRateLimit(deps.frameRate, { clock: deps.monotonicClock });
    socket.on('message', (data, isBinary) => {
      this.#deps.metrics?.frameIn();
      if (this.#cutOff) return;
      if (!this.#frameRate.take()) {
        this.#cutOffOverRate();
        return;
      }
      const frame = isBinary ? '' : String(data);
      this.#queuedFrames += 1;
      // A pilot that sends faster than its frames are handled stops being read (TCP pushes back on
      // it) instead of piling frames up in memory.
      if (this.#queuedFrames === MAX_QUEUED_FRAMES) socket.pause();
      this.#enqueue(async () => {
        try {
          await this.#onFrame(frame);
        } finally {
          this.#queuedFrames -= 1;
          if (this.#queuedFrames === MAX_QUEUED_FRAMES / 2 && socket.isPaused) socket.resume();
        }
      });
    });
    socket.on('close', () => this.#enqueue(() => this.#onClose()));
    socket.on('error', (error: Error & { code?: string }) => {
      if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        this.#logger.warn({ maxFrameBytes: deps.maxFrameBytes }, 'pilot frame too large, connection closed (1009)');
      } else {
        this.#logger.warn({ err: error }, 'pilot socket error');
      }
    });
    deps.liveness.watch(
      socket,
      () => this.#logger,
      () => this.#enqueue(() => this.#stallHeldJobs()),
    );
  }

  /** Over its frame rate: told once (RATE_LIMITED) and closed; what it sends meanwhile is dropped. */
  #cutOffOverRate(): void {
    this.#cutOff = true;
    this.#logger.warn(
      { framesPerSec: this.#deps.frameRate.framesPerSec },
      'pilot connection over its frame rate, closed',
    );
    this.#send({
      type: 'error',
      code: 'RATE_LIMITED',
      message: `more than ${this.#deps.frameRate.framesPerSec} frames a second (burst ${this.#deps.frameRate.burst}); reconnect and slow down`,
    });
    this.#socket.close(1008, 'RATE_LIMITED');
  }

  /** Settles once every frame received so far has been handled (for a clean stop). */
  async drained(): Promise<void> {
    await this.#chain;
    await Promise.all(this.#reportsInFlight);
  }

  #enqueue(task: () => Promise<void>): void {
    this.#chain = this.#chain.then(task).catch((error: unknown) => {
      this.#logger.error({ err: error }, 'pilot session task failed');
    });
  }

  #send(body: MatcherMessageBody): void {
    if (this.#socket.readyState !== this.#socket.OPEN) return;
    const transport = this.#transport;
    if (transport !== null && !this.#corked) {
      this.#corked = true;
      transport.cork();
      // After every promise callback of this turn: all their frames go out together.
      process.nextTick(() => {
        this.#corked = false;
        transport.uncork();
      });
    }
    this.#socket.send(encodeMessage(body));
    this.#deps.metrics?.frameOut();
  }

  async #onFrame(frame: string): Promise<void> {
    let message: PilotMessage;
    try {
      message = parsePilotMessage(frame, this.#deps.maxFrameBytes);
    } catch (thrown) {
      const error = toAnswerError(thrown);
      this.#send({ type: 'error', code: error.code, message: error.message });
      this.#violations += 1;
      if (error.code === 'PROTOCOL_VERSION' || this.#violations >= MAX_PROTOCOL_VIOLATIONS) {
        this.#socket.close(1008, error.code);
      }
      return;
    }
    const ref = 'ref' in message ? message.ref : undefined;
    try {
      await this.#dispatch(message);
    } catch (thrown) {
      this.#answerError(thrown, ref);
    }
  }

  /** Tells the pilot why a message failed (with its ref, so that it stops waiting for an ack). */
  #answerError(thrown: unknown, ref: number | undefined): void {
    const error = toAnswerError(thrown);
    if (error.code === 'INTERNAL') this.#logger.error({ err: error.cause ?? error }, 'pilot message failed');
    this.#send({ type: 'error', code: error.code, message: error.message, ...(ref !== undefined && { ref }) });
  }

  async #dispatch(message: PilotMessage): Promise<void> {
    // Every message: the token the session was opened with must still be good (not revoked, its key
    // neither revoked nor dropped), and the message type must pass its policy.
    if (!(await this.#stillAuthorized())) return;
    checkPilotMessage(this.#principal, message.type, this.#hello !== null);
    if (message.type === 'hello') return this.#onHello(message);
    if (!this.#hello) throw new PilothouseError('PROTOCOL_VIOLATION', 'the first message must be hello');
    switch (message.type) {
      case 'offer':
        return this.#onOffer(
          message.offerId,
          message.matchSeq,
          { ...this.#placement(), resources: message.resources },
          message.maxJobs ?? 1,
        );
      case 'offer.cancel':
        this.#deps.matchService.unpark(this.#pilotId, message.offerId);
        this.#send({ type: 'offer.cancelled', offerId: message.offerId });
        return;
      case 'job.status':
        return this.#onJobStatus(message);
      case 'job.statuses':
        return this.#onJobStatuses(message);
      case 'heartbeat':
        return this.#onHeartbeat(message);
      case 'log':
        return this.#onLog(message);
      case 'bye': {
        this.#saidBye = true;
        this.#deps.matchService.unpark(this.#pilotId);
        const at = isoNow(this.#deps.clock);
        await this.#deps.pilots.recordBye(this.#pilotId, message.reason, at);
        await this.#deps.activity.recordExit(this.#pilotId, {
          at,
          reason: message.reason,
          jobsRun: message.jobsRun ?? null,
          jobsFailed: message.jobsFailed ?? null,
        });
        this.#logger.info(
          { reason: message.reason, jobsRun: message.jobsRun, jobsFailed: message.jobsFailed },
          'pilot said bye',
        );
        this.#socket.close(1000, 'bye');
        return;
      }
    }
  }

  #placement(): Omit<Offer, 'resources'> {
    const hello = this.#hello as Hello;
    return { vo: this.#principal.vo, site: hello.site, ce: hello.ce, queue: hello.queue };
  }

  /** Closes the session (1008) once its token is revoked, or its signing key revoked or dropped. */
  recheckCredentials(): void {
    this.#authorizedUntilMs = 0;
  }

  async #stillAuthorized(): Promise<boolean> {
    // A busy pilot sends many frames a second: re-checking its credential once per interval bounds how
    // late a revocation reaches an open session, without a key-directory stat and a store read per frame.
    const nowMs = this.#deps.clock.nowMs();
    if (nowMs < this.#authorizedUntilMs) return true;
    try {
      await this.#deps.tokens.assertStillValid(this.#principal);
      this.#authorizedUntilMs = nowMs + SESSION_RECHECK_MS;
      return true;
    } catch (thrown) {
      const error = toAnswerError(thrown);
      if (error.code === 'INTERNAL') throw error;
      this.#logger.warn({ code: error.code }, 'pilot session closed: its token is no longer valid');
      this.#send({ type: 'error', code: error.code, message: error.message });
      this.#socket.close(1008, error.code);
      return false;
    }
  }

  async #onHello(hello: Hello): Promise<void> {
    if (this.#hello) throw new PilothouseError('PROTOCOL_VIOLATION', 'hello was already said');
    try {
      assertPilotMayBe(this.#principal, hello.pilotStamp, hello.site);
      // A generic token must not take over the stamp of another VO's pilot (and its jobs).
      const known = await this.#deps.pilots.getPilot(hello.pilotStamp);
      if (known && known.vo !== this.#principal.vo) {
        throw new PilothouseError('FORBIDDEN', `pilot ${hello.pilotStamp} belongs to another VO`);
      }
    } catch (thrown) {
      const error = toAnswerError(thrown);
      if (error.code === 'INTERNAL') throw error;
      this.#logger.warn({ pilotStamp: hello.pilotStamp, site: hello.site, code: error.code }, 'pilot hello refused');
      this.#send({ type: 'error', code: error.code, message: error.message });
      this.#socket.close(1008, error.code);
      return;
    }
    this.#hello = hello;
    this.#pilotId = hello.pilotStamp;
    this.#logger = this.#deps.logger.child({ pilotId: this.#pilotId, site: hello.site, vo: this.#principal.vo });
    await this.#deps.pilots.recordHello({
      id: this.#pilotId,
      vo: this.#principal.vo,
      site: hello.site,
      ce: hello.ce,
      queue: hello.queue,
      node: hello.node,
      pilotVersion: hello.pilotVersion,
      at: isoNow(this.#deps.clock),
    });
    this.#deps.registry.register(this.#pilotId, this);
    await this.#deps.presence.pilotArrived(this.#pilotId);
    const lost = hello.holding ? await this.#deps.undelivered.reconcile(this.#pilotId, hello.holding) : 0;
    this.#logger.info({ node: hello.node, holding: hello.holding?.length, lostMatches: lost }, 'pilot connected');
    this.#send({ type: 'welcome', pilotId: this.#pilotId, heartbeatIntervalMs: this.#deps.heartbeatIntervalMs });
    // A drain asked for while the pilot was away (or before a matcher restart) is delivered now.
    const activity = await this.#deps.activity.getActivity(this.#pilotId);
    if (activity.drain !== null && activity.exit === null) this.#send({ type: 'drain', reason: activity.drain.reason });
  }

  async #onOffer(offerId: string, matchSeq: number, offer: Offer, maxJobs: number): Promise<void> {
    // The pilot built this offer before seeing our latest match: its resources are out of date.
    // It re-offers after every match, so dropping the stale offer loses nothing.
    if (matchSeq < this.#matchesSent) return;
    const { matchService } = this.#deps;
    matchService.unpark(this.#pilotId);
    const matches = await matchService.findMatches(offer, this.#pilotId, maxJobs);
    if (matches.length > 0) {
      await this.#sendMatches(offerId, matches);
      return;
    }
    matchService.park({
      pilotId: this.#pilotId,
      offerId,
      offer,
      serve: () =>
        new Promise<void>((resolve) => {
          this.#enqueue(async () => {
            try {
              if (this.#closed || !matchService.isParked(this.#pilotId, offerId)) return;
              const pushed = await matchService.findMatches(offer, this.#pilotId, maxJobs);
              if (pushed.length === 0) return;
              matchService.unpark(this.#pilotId, offerId);
              await this.#sendMatches(offerId, pushed);
            } finally {
              resolve();
            }
          });
        }),
    });
    this.#send({ type: 'parked', offerId });
  }

  /** One match frame per job, in one write; each but the last says how many are following. */
  async #sendMatches(offerId: string, matches: readonly Match[]): Promise<void> {
    // Claimed as the connection went (before or while the tokens were signed): the pilot will never
    // see these frames, so none leaves and every job goes back.
    const gone = async (): Promise<boolean> => {
      if (this.#socket.readyState === this.#socket.OPEN) return false;
      for (const { job } of matches) await this.#deps.undelivered.notSent(job.id, job.attempt);
      return true;
    };
    if (await gone()) return;
    const tokens = await Promise.all(matches.map(({ job }) => this.#jobToken(job)));
    if (await gone()) return;
    for (const [index, { job, grant }] of matches.entries()) {
      this.#matchesSent += 1;
      this.#sentMatches.sent(job.id, job.attempt, this.#matchesSent);
      this.#logger.info({ jobId: job.id, attempt: job.attempt, cores: grant.cores }, 'job matched');
      const following = matches.length - 1 - index;
      this.#send({
        type: 'match',
        offerId,
        matchSeq: this.#matchesSent,
        job: {
          jobId: job.id,
          attempt: job.attempt,
          owner: job.owner,
          group: job.group,
          vo: job.vo,
          description: job.description,
          cores: grant.cores,
          memoryMB: grant.memoryMB,
          gpuIds: grant.gpuIds,
          jobToken: tokens[index] as string,
        },
        ...(following > 0 && { following }),
      });
    }
  }

  #jobToken(job: Match['job']): Promise<string> {
    return this.#deps.tokens.issue({
      kind: 'job',
      subject: `job:${job.id}:${job.attempt}`,
      vo: job.vo,
      group: job.group,
      properties: [],
      jobId: job.id,
      attempt: job.attempt,
      ttlSec: job.description.requirements.wallTimeSec + this.#deps.jobTokenGraceSec,
    });
  }

  /**
   * Status reports are pipelined where the store applies writes in the order they are asked for:
   * the next frame (another report, the next offer) is handled without waiting for this report's
   * commit, so that a pilot's Running, Done and next offer share one group commit and their answers
   * one write to the socket. The acks still leave in order (the group resolves in queue order).
   */
  #onJobStatus(message: Extract<PilotMessage, { type: 'job.status' }>): Promise<void> {
    return this.#pipelined(
      this.#storeReports(message).then(() => this.#send({ type: 'ack', ref: message.ref })),
      message.ref,
    );
  }

  /**
   * A report frame's work, already asked of the store: awaited where the store does not apply writes
   * in order, else left to finish on its own (its error answered with the frame's ref).
   */
  #pipelined(work: Promise<void>, ref: number): Promise<void> {
    if (!this.#deps.store.appliesWritesInOrder) return work;
    const settled = work.catch((thrown: unknown) => this.#answerError(thrown, ref));
    this.#reportsInFlight.add(settled);
    void settled.finally(() => this.#reportsInFlight.delete(settled));
    return Promise.resolve();
  }

  /**
   * The reports of several attempts: each stored as its own job.status frame would be, all asked for
   * in the same turn (one group commit); one ack names the attempts refused for good. A retryable
   * refusal (the store unavailable) answers the whole frame with its code instead: the pilot replays
   * it, and the reports already stored are told apart by their report keys.
   */
  #onJobStatuses(message: Extract<PilotMessage, { type: 'job.statuses' }>): Promise<void> {
    const stored = Promise.all(
      message.reports.map((attempt) =>
        this.#storeReports(attempt).then(
          () => null,
          (thrown: unknown) => ({ jobId: attempt.jobId, attempt: attempt.attempt, error: toAnswerError(thrown) }),
        ),
      ),
    ).then((outcomes) => {
      const refused = outcomes.filter((outcome) => outcome !== null);
      const retryable = refused.find(({ error }) => ERROR_CODES[error.code].retryable);
      if (retryable !== undefined) throw retryable.error;
      for (const { jobId, attempt, error } of refused) {
        if (error.code === 'INTERNAL') this.#logger.error({ err: error.cause ?? error, jobId }, 'pilot message failed');
        else this.#logger.warn({ jobId, attempt, code: error.code }, 'status report refused');
      }
      this.#send({
        type: 'ack',
        ref: message.ref,
        ...(refused.length > 0 && {
          refused: refused.map(({ jobId, attempt, error }) => ({
            jobId,
            attempt,
            code: error.code,
            message: error.message,
          })),
        }),
      });
    });
    return this.#pipelined(stored, message.ref);
  }

  /** Stores one attempt's reports (the frame's own last, `earlier` before it, oldest first). */
  async #storeReports(message: AttemptReports): Promise<void> {
    const { earlier, ...latest } = message;
    const reports = [...(earlier ?? []), latest].map((report) => {
      const at = new Date(report.at).toISOString();
      return { fields: report, at };
    });
    // The payload's last output is stored no later than the reports: whoever reads the job final (a
    // `logs --follow` that stops there) also reads its last output. A store that applies writes in
    // the order asked puts both in one commit (nothing awaited before: the next frame's writes must
    // queue after these); another stores the output first. Only the pilot holding the job writes it.
    const heldBy = { pilotId: this.#pilotId, vo: this.#principal.vo };
    const lastTail = reports.findLast(({ fields }) => fields.outputTail !== undefined);
    const tail = lastTail?.fields.outputTail;
    const tailStored =
      lastTail === undefined || tail === undefined
        ? undefined
        : this.#deps.store.recordOutputTail(message.jobId, message.attempt, tail, lastTail.at, heldBy);
    if (tailStored !== undefined && !this.#deps.store.appliesWritesInOrder) await tailStored;
    // The store checks that this pilot holds the job on the row the reports read (one read, not two).
    const reported = this.#deps.store.reportStatuses(
      message.jobId,
      message.attempt,
      reports.map(({ fields, at }) => ({
        report: {
          status: fields.status,
          minorStatus: fields.minorStatus,
          applicationStatus: fields.applicationStatus,
          exitCode: fields.exitCode,
          outputSandbox: fields.outputSandbox,
          at,
          source: 'Pilot',
        },
        reportKey: statusReportKey({ ...fields, at }),
      })),
      heldBy,
    );
    const [outcomes] = await Promise.all([reported, tailStored]);
    outcomes.forEach((outcome, index) => {
      if (outcome.applied || outcome.duplicate) return;
      const status = reports[index]?.fields.status;
      this.#logger.warn(
        { jobId: message.jobId, status, current: outcome.status },
        'status update refused by state machine',
      );
    });
  }

  async #onHeartbeat(message: Extract<PilotMessage, { type: 'heartbeat' }>): Promise<void> {
    const at = isoNow(this.#deps.clock);
    // A heartbeat replayed after a reconnect carries when it was sampled (never later than now).
    const sampledAt =
      message.at !== undefined && Date.parse(message.at) < Date.parse(at) ? new Date(message.at).toISOString() : at;
    const commands: JobCommand[] = [];
    const usage: JobUsageSample[] = [];
    for (const sample of message.jobs) {
      const job = await this.#deps.store.getJob(sample.jobId);
      if (!job) continue;
      if (job.attempt > sample.attempt && job.vo === this.#principal.vo) {
        // That attempt was ended while the pilot was silent (the job was rescheduled): stop running it.
        commands.push({ jobId: sample.jobId, attempt: sample.attempt, command: 'kill' });
        continue;
      }
      if (!canPilotReportOn(this.#principal, this.#pilotId, job) || job.attempt !== sample.attempt) continue;
      const { cpuSec, rssMB, wallSec } = sample;
      commands.push(
        ...(await this.#deps.store.recordHeartbeat(sample.jobId, sample.attempt, { cpuSec, rssMB, wallSec }, at)),
      );
      if (sample.outputTail)
        await this.#deps.store.recordOutputTail(sample.jobId, sample.attempt, sample.outputTail, at);
      usage.push({
        jobId: sample.jobId,
        attempt: sample.attempt,
        at: sampledAt,
        cpuSec,
        rssMB,
        wallSec,
        diskMB: sample.diskMB ?? null,
      });
    }
    const node =
      message.node === undefined
        ? null
        : { at: sampledAt, load1: message.node.load1, diskFreeMB: message.node.diskFreeMB };
    if (node !== null || usage.length > 0) await this.#deps.activity.recordHeartbeat(this.#pilotId, node, usage);
    if (message.matchSeq !== undefined) await this.#giveBackLostMatches(message.matchSeq, message.jobs);
    this.#send({ type: 'ack', ref: message.ref });
    if (commands.length > 0) this.#send({ type: 'commands', commands });
  }

  /** Matches this heartbeat covers and does not list: the pilot lost them, and they go back. */
  async #giveBackLostMatches(matchSeq: number, holding: readonly { jobId: number; attempt: number }[]): Promise<void> {
    const lost = this.#sentMatches.judge(matchSeq, holding);
    if (lost.length === 0) return;
    // The reports this pilot sent before the heartbeat are stored first: a job it ended is no longer Matched.
    await Promise.all(this.#reportsInFlight);
    const given = await this.#deps.undelivered.notHeld(this.#pilotId, lost);
    if (given > 0) this.#logger.warn({ lostMatches: given, matchSeq }, 'pilot does not hold matches it received');
  }

  /** The pilot's own log lines: stored once per seq (a replay is acked and changes nothing). */
  async #onLog(message: Extract<PilotMessage, { type: 'log' }>): Promise<void> {
    const outcome = await this.#deps.activity.appendLogs(
      this.#pilotId,
      message.lines,
      message.dropped ?? 0,
      isoNow(this.#deps.clock),
    );
    if (outcome.overCap > 0) this.#logger.warn({ overCap: outcome.overCap }, 'pilot log cap reached: lines dropped');
    this.#send({ type: 'ack', ref: message.ref });
  }

  deliverDrain(reason: string): void {
    this.#enqueue(async () => {
      if (!this.#closed) this.#send({ type: 'drain', reason });
    });
  }

  deliverPendingCommands(jobId: number, attempt: number): void {
    this.#enqueue(async () => {
      const commands = await this.#deps.store.takePendingCommands(jobId, attempt, isoNow(this.#deps.clock));
      if (commands.length > 0) this.#send({ type: 'commands', commands });
    });
  }

  /**
   * The connection was dropped for not answering pings, or closed without a bye: the node froze or
   * vanished, so its running jobs are Stalled now rather than after the silence timeout. If the pilot comes back in the grace
   * period its heartbeat revives them; otherwise the fault sweeper reschedules them.
   */
  async #stallHeldJobs(): Promise<void> {
    if (!this.#hello) return;
    const held = await this.#deps.store.searchJobs({
      pilotIds: [this.#pilotId],
      statuses: ['Running', 'Completing'],
      sort: [{ column: 'id', direction: 'asc' }],
      page: 1,
      perPage: 1000,
    });
    const at = isoNow(this.#deps.clock);
    for (const job of held.jobs) {
      if (await this.#deps.store.markStalled(job.id, job.attempt, at, STALLED_BY)) {
        this.#logger.warn({ jobId: job.id, attempt: job.attempt }, 'job stalled: pilot connection lost');
      }
    }
  }

  async #onClose(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#hello) return;
    this.#deps.matchService.unpark(this.#pilotId);
    this.#deps.registry.unregister(this.#pilotId, this);
    await this.#deps.presence.pilotLeft(this.#pilotId).catch(() => undefined);
    if (!this.#saidBye) {
      await this.#deps.pilots.recordDisconnect(this.#pilotId, isoNow(this.#deps.clock));
      this.#logger.info('pilot disconnected');
      // Gone without a bye (the process died, the node or the network failed): its jobs are Stalled
      // now, not after the silence timeout. Not when this matcher is the one stopping, nor when the
      // pilot is already back (to this replica or another): its heartbeats keep them Running.
      const back = await this.#deps.presence.pilotConnected(this.#pilotId).catch(() => false);
      if (!this.#deps.stopping() && !back) await this.#stallHeldJobs();
    }
  }
}
