/**
 * The pilot's connection to the matcher: one WebSocket at a time, said hello to, kept alive with
 * pings, and re-opened with backoff and jitter whenever it drops. Job status reports go through an
 * ordered outbox: each is sent with a per-connection `ref` and stays there until the matcher acks it,
 * so everything unacked is replayed, in order, after a reconnect. The pilot's own log lines are
 * shipped in batches the same way (acked, replayed; the matcher keeps each line once by its seq).
 * A heartbeat taken while disconnected is kept (the latest one) and sent, with its time, on the next
 * connection. Offers are not buffered: they only mean something on the connection they were sent on.
 *
 * `MatcherLink` is the port the loop talks to; `WsMatcherLink` is the real thing, tests use fakes.
 * A 401/403 on upgrade or a protocol version mismatch is `fatal`: the link stops for good.
 */
import { EventEmitter } from 'node:events';
import { FINAL_STATUSES } from '../shared/job/status.ts';
import { groupReportsIntoFrames, packAttemptsIntoFrames } from './report-frames.ts';
import WebSocket from 'ws';
import type { Logger } from '../shared/logger.ts';
import type { MatcherEndpoints } from '../shared/endpoints.ts';
import { backoffDelayMs, type BackoffOptions } from '../shared/backoff.ts';
import { ERROR_CODES, PilothouseError, isErrorCode } from '../shared/errors.ts';
import {
  MAX_FRAME_BYTES,
  encodeMessage,
  parseMatcherMessage,
  type MatcherMessage,
  type OfferResources,
  type PilotMessageBody,
} from '../shared/protocol/messages.ts';
import { attemptKey } from '../shared/job/attempt-key.ts';

export type HelloBody = Omit<Extract<PilotMessageBody, { type: 'hello' }>, 'type'>;
export type JobStatusBody = Omit<Extract<PilotMessageBody, { type: 'job.status' }>, 'type' | 'ref'>;
export type HeartbeatJob = Extract<PilotMessageBody, { type: 'heartbeat' }>['jobs'][number];
export type HeartbeatNode = NonNullable<Extract<PilotMessageBody, { type: 'heartbeat' }>['node']>;
/** An attempt the matcher refused for good in a job.statuses frame it acked. */
type RefusedAttempt = NonNullable<Extract<MatcherMessage, { type: 'ack' }>['refused']>[number];

/** What the pilot tells the matcher in its bye. */
export interface ByeStats {
  jobsRun?: number;
  jobsFailed?: number;
}
export type WelcomeMessage = Extract<MatcherMessage, { type: 'welcome' }>;
/**
 * A match frame this pilot cannot read (typically a newer matcher sending description fields this
 * pilot does not know). It still names the job, so the loop can count the match and fail the attempt
 * instead of leaving it Matched until a sweeper notices.
 */
export interface UnreadableMatch {
  type: 'match.unreadable';
  offerId: string;
  matchSeq: number;
  /** More matches for the same offer that come right after this one. */
  following: number;
  jobId: number;
  attempt: number;
  reason: string;
}
/** Frames the loop acts on (acks and report errors are consumed by the link itself). */
export type LinkInbound =
  | Extract<
      MatcherMessage,
      { type: 'match' | 'parked' | 'no-match' | 'offer.cancelled' | 'commands' | 'drain' | 'error' }
    >
  | UnreadableMatch;

export interface LinkEvents {
  /** A fresh connection was welcomed (the outbox has already been replayed on it). */
  connected: [welcome: WelcomeMessage];
  disconnected: [info: { code: number; reason: string }];
  reconnecting: [info: { attempt: number; delayMs: number }];
  message: [message: LinkInbound];
  /** The outbox became empty: every report has been acked (or refused for good). */
  drained: [];
  /** The link gave up for good (auth refused, protocol version). */
  fatal: [error: PilothouseError];
}

export interface MatcherLink extends EventEmitter<LinkEvents> {
  readonly connected: boolean;
  /** Reports not yet acked. */
  readonly pendingReports: number;
  start(): void;
  /**
   * Returns false (and sends nothing) while disconnected. `maxJobs` (default 1): up to that many jobs
   * may fill the offer at once, each in its own match frame.
   */
  sendOffer(offerId: string, matchSeq: number, resources: OfferResources, maxJobs?: number): boolean;
  cancelOffer(offerId: string): boolean;
  /** Queues a job status report; it is delivered, in order, across reconnects. */
  report(body: JobStatusBody): void;
  /**
   * Sent now, or (the latest one) on the next connection. `matchSeq`: the matches received on this
   * connection; it is passed on only when `jobs` lists every attempt the pilot holds as it leaves (its
   * jobs, and attempts whose reports are not yet acked), and never with a heartbeat kept for the next
   * connection.
   */
  heartbeat(jobs: HeartbeatJob[], node?: HeartbeatNode, matchSeq?: number): void;
  /** Says bye (when connected), closes and stops reconnecting. */
  close(reason: string, stats?: ByeStats): Promise<void>;
  /**
   * Who to ask, at each connection, which attempts the pilot holds (told in the hello, with the
   * attempts whose reports are still unacked).
   */
  setHeldJobs(provider: () => HeldJob[]): void;
}

export interface HeldJob {
  jobId: number;
  attempt: number;
}

/** A sink for the pilot's log lines (the link ships them; tests may collect them). */
export interface LogSink {
  log(line: string): void;
}

export interface WsMatcherLinkOptions {
  /** The matcher's addresses: a connection that fails moves to the next. */
  matcher: MatcherEndpoints;
  /** The pilot token, or a provider asked before each connection (it may refresh first). */
  token: string | (() => string | Promise<string>);
  /** CA bundle (PEM) that verifies a wss:// matcher; null = Node's default roots. */
  ca?: string | null;
  /** Said at each connection; a function is asked then (the pilot may still be probing when it connects). */
  hello: HelloBody | (() => HelloBody);
  logger: Logger;
  backoff: BackoffOptions;
  random?: () => number;
  handshakeTimeoutMs?: number;
  /** How long after the upgrade the matcher has to say welcome. */
  welcomeTimeoutMs?: number;
  /**
   * A report refused with a retryable code (the matcher's store unavailable, the matcher shutting down)
   * is replayed until this long after its first refusal, then dropped. A Done must outlive a database
   * restart or failover, so the budget is long: the matcher's own stall timers are longer still.
   */
  reportRetryBudgetMs?: number;
  /** Pings missed in a row before the connection is declared dead. */
  maxPingsOut?: number;
  /** Log lines are sent this often (when there are any). */
  logFlushMs?: number;
  /** Lines kept while the matcher cannot be reached; beyond, the oldest are dropped (and counted). */
  maxLogLines?: number;
  /** At close, how long to wait for the last log lines to be acked. */
  logCloseTimeoutMs?: number;
  /**
   * A report that does not end its job waits up to this long for the reports after it, so that they
   * leave in one frame (a short job's Running ... Done: one frame, one write in the matcher); its
   * time is the time it was made. A final report sends at once every report queued. 0: no waiting.
   */
  reportCoalesceMs?: number;
  now?: () => number;
}

const MAX_LOG_LINE_CHARS = 16_000;
/** JSON characters of the reports in one frame (output tails included): far below any frame limit. */
const MAX_REPORT_FRAME_CHARS = 256 * 1024;
const MAX_LOG_BATCH_LINES = 1_000;
/** Encoded bytes of one batch: a log frame stays far below the matcher's smallest frame limit (512 KiB). */
const MAX_LOG_BATCH_BYTES = 256 * 1024;

interface OutboxEntry {
  body: JobStatusBody;
  refusals: number;
  /** When the matcher first refused it (retryable), per `now()`; null while never refused. */
  firstRefusedMs: number | null;
}

const CLOSE_TIMEOUT_MS = 5_000;

export class WsMatcherLink extends EventEmitter<LinkEvents> implements MatcherLink, LogSink {
  readonly #options: Required<WsMatcherLinkOptions>;
  readonly #logger: Logger;
  #socket: WebSocket | null = null;
  #welcomed = false;
  /** start() was called: hello is said, and a lost connection is re-opened. */
  #started = false;
  #stopped = false;
  /** Why the link gave up before start(): told to the loop when it starts. */
  #failedBeforeStart: PilothouseError | null = null;
  #failedAttempts = 0;
  #nextRef = 1;
  readonly #outbox: OutboxEntry[] = [];
  /** ref -> the outbox entries of that frame, for the current connection only. */
  readonly #inflight = new Map<number, OutboxEntry[]>();
  /** Queued reports go out at the end of this turn (a final report, or no coalescing). */
  #reportsDueNow = false;
  #reportTimer: NodeJS.Timeout | null = null;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #welcomeTimer: NodeJS.Timeout | null = null;
  #pingTimer: NodeJS.Timeout | null = null;
  #pingsOut = 0;
  /** Log lines not yet acked, oldest first; a batch in flight is a prefix of it. */
  readonly #logLines: { seq: number; line: string }[] = [];
  #logSeq = 0;
  #logDropped = 0;
  #logInflight: { ref: number; count: number; dropped: number } | null = null;
  #logTimer: NodeJS.Timeout | null = null;
  #logAcked: (() => void) | null = null;
  #pendingHeartbeat: { jobs: HeartbeatJob[]; node: HeartbeatNode | undefined; at: string } | null = null;
  #heldJobs: () => HeldJob[] = () => [];

  constructor(options: WsMatcherLinkOptions) {
    super();
    this.#options = {
      random: Math.random,
      handshakeTimeoutMs: 15_000,
      welcomeTimeoutMs: 15_000,
      reportRetryBudgetMs: 3_600_000,
      maxPingsOut: 2,
      ca: null,
      logFlushMs: 1_000,
      maxLogLines: 20_000,
      logCloseTimeoutMs: 3_000,
      reportCoalesceMs: 500,
      now: Date.now,
      ...options,
    };
    this.#logger = options.logger;
  }

  get connected(): boolean {
    return this.#welcomed;
  }

  get pendingReports(): number {
    return this.#outbox.length;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const failure = this.#failedBeforeStart;
    if (failure !== null) {
      // After start() returns: the loop listens by then and has finished starting.
      queueMicrotask(() => this.emit('fatal', failure));
      return;
    }
    if (this.#stopped) return;
    const socket = this.#socket;
    if (socket === null) this.#connect();
    else if (socket.readyState === WebSocket.OPEN) this.#sayHello(socket);
    // else: still connecting; hello is said when it opens
  }

  /**
   * Opens the connection before the pilot is ready to say hello: TCP, TLS and the upgrade overlap what
   * the pilot does meanwhile (probing the node). Nothing is said until start(); a connection lost
   * before then is opened again by start(). A refused token is told to the loop at start().
   */
  preconnect(): void {
    if (this.#started || this.#stopped || this.#socket !== null) return;
    this.#connect();
  }

  sendOffer(offerId: string, matchSeq: number, resources: OfferResources, maxJobs = 1): boolean {
    // Reports due now leave first: the matcher hears that a job ended before the offer that follows.
    if (this.#reportsDueNow) this.#sendQueuedReports();
    return this.#sendNow({ type: 'offer', offerId, matchSeq, resources, ...(maxJobs > 1 && { maxJobs }) });
  }

  cancelOffer(offerId: string): boolean {
    return this.#sendNow({ type: 'offer.cancel', offerId });
  }

  setHeldJobs(provider: () => HeldJob[]): void {
    this.#heldJobs = provider;
  }

  /** What the pilot holds: the loop's jobs and every attempt with a report not yet acked. */
  #holding(): HeldJob[] {
    const held = new Map<string, HeldJob>();
    const add = (jobId: number, attempt: number) => held.set(attemptKey(jobId, attempt), { jobId, attempt });
    for (const job of this.#heldJobs()) add(job.jobId, job.attempt);
    for (const entry of this.#outbox) add(entry.body.jobId, entry.body.attempt);
    return [...held.values()];
  }

  report(body: JobStatusBody): void {
    const entry: OutboxEntry = { body, refusals: 0, firstRefusedMs: null };
    this.#outbox.push(entry);
    this.#logger.debug({ ...body, pending: this.#outbox.length, connected: this.#welcomed }, 'report queued');
    if (!this.#welcomed) return;
    const final = body.status !== undefined && FINAL_STATUSES.has(body.status);
    if (final || this.#options.reportCoalesceMs === 0) {
      if (this.#reportsDueNow) return;
      this.#reportsDueNow = true;
      setImmediate(() => {
        if (this.#reportsDueNow) this.#sendQueuedReports();
      });
    } else {
      this.#reportTimer ??= setTimeout(() => this.#sendQueuedReports(), this.#options.reportCoalesceMs);
    }
  }

  heartbeat(jobs: HeartbeatJob[], node?: HeartbeatNode, matchSeq?: number): void {
    if (!this.#welcomed) {
      // Replayed on the next connection, whose matches it never saw: it vouches for none of them.
      this.#pendingHeartbeat = { jobs, node, at: new Date(this.#options.now()).toISOString() };
      return;
    }
    // The matcher gives back a received match the heartbeat does not list, so the count goes only with
    // a list of everything held, jobs with reports not yet acked included (a job that just ended).
    const listed = new Set(jobs.map((job) => attemptKey(job.jobId, job.attempt)));
    const complete = this.#holding().every((job) => listed.has(attemptKey(job.jobId, job.attempt)));
    this.#sendNow({
      type: 'heartbeat',
      ref: this.#nextRef++,
      jobs,
      ...(matchSeq !== undefined && complete && { matchSeq }),
      ...(node === undefined ? {} : { node }),
    });
  }

  /** Queues one line of the pilot's own log for the matcher. */
  log(line: string): void {
    const text = line.endsWith('\n') ? line.slice(0, -1) : line;
    this.#logLines.push({
      seq: ++this.#logSeq,
      line: text.length > MAX_LOG_LINE_CHARS ? `${text.slice(0, MAX_LOG_LINE_CHARS)}...` : text,
    });
    const excess = this.#logLines.length - this.#options.maxLogLines;
    if (excess > 0) {
      // Never drop lines of the batch in flight: its ack removes exactly that prefix.
      const keep = this.#logInflight?.count ?? 0;
      const removed = this.#logLines.splice(keep, Math.min(excess, this.#logLines.length - keep));
      this.#logDropped += removed.length;
    }
  }

  /** Log lines not yet acked by the matcher. */
  get pendingLogLines(): number {
    return this.#logLines.length;
  }

  async close(reason: string, stats: ByeStats = {}): Promise<void> {
    this.#stopped = true;
    this.#clearTimers();
    const socket = this.#socket;
    if (socket === null) return;
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    if (this.#welcomed) {
      this.#sendQueuedReports();
      await this.#flushLogsBeforeBye();
      this.#sendNow({ type: 'bye', reason, ...stats });
      socket.close(1000, 'bye');
      const timer = setTimeout(() => socket.terminate(), CLOSE_TIMEOUT_MS);
      await closed;
      clearTimeout(timer);
    } else {
      socket.terminate();
      await closed;
    }
  }

  #connect(): void {
    const { token } = this.#options;
    if (typeof token === 'string') return this.#open(token);
    // A refreshable credential: get a fresh token first; a refused refresh is as fatal as a refused token.
    void Promise.resolve()
      .then(token)
      .then(
        (value) => {
          if (!this.#stopped && this.#socket === null) this.#open(value);
        },
        (error: unknown) => {
          if (this.#stopped) return;
          this.#fail(error instanceof PilothouseError ? error : new PilothouseError('TOKEN_INVALID', String(error)));
        },
      );
  }

  #open(token: string): void {
    const { handshakeTimeoutMs, ca } = this.#options;
    const base = this.#options.matcher.base;
    const connectUrl = this.#options.matcher.connectUrl;
    this.#logger.debug({ url: connectUrl }, 'connecting');
    const socket = new WebSocket(connectUrl, {
      headers: { Authorization: `Bearer ${token}` },
      handshakeTimeout: handshakeTimeoutMs,
      maxPayload: MAX_FRAME_BYTES,
      ...(ca !== null && { ca }),
    });
    this.#socket = socket;
    let fatal: PilothouseError | null = null;

    socket.on('open', () => {
      if (this.#started && socket === this.#socket) this.#sayHello(socket);
    });
    socket.on('message', (data, isBinary) => {
      if (socket !== this.#socket) return;
      this.#pingsOut = 0;
      if (isBinary) {
        this.#logger.warn('binary frame ignored');
        return;
      }
      const failure = this.#onFrame(rawDataToString(data));
      if (failure !== null) {
        fatal = failure;
        socket.terminate();
      }
    });
    socket.on('pong', () => {
      this.#pingsOut = 0;
    });
    socket.on('error', (error) => {
      const status = /Unexpected server response: (\d+)/.exec(error.message)?.[1];
      if (status === '401' || status === '403') {
        fatal = new PilothouseError(
          status === '401' ? 'TOKEN_INVALID' : 'FORBIDDEN',
          `the matcher refused the pilot token (HTTP ${status} on ${connectUrl})`,
          { httpStatus: Number(status) },
        );
        return;
      }
      this.#logger.warn(
        { err: { message: error.message, code: (error as NodeJS.ErrnoException).code } },
        'connection error',
      );
    });
    socket.on('close', (code, reasonBuffer) => {
      if (socket !== this.#socket) return;
      const wasWelcomed = this.#welcomed;
      this.#socket = null;
      this.#welcomed = false;
      this.#inflight.clear();
      this.#logInflight = null; // its lines are still queued: they go again on the next connection
      this.#logAcked?.();
      this.#clearTimers();
      const reason = reasonBuffer.toString();
      if (wasWelcomed) {
        this.#logger.warn({ code, reason }, 'disconnected');
        this.emit('disconnected', { code, reason });
      }
      if (fatal !== null) {
        this.#fail(fatal);
        return;
      }
      // A connection that never got its welcome: this address may be down, the next one is tried.
      if (!wasWelcomed) {
        this.#logger.debug({ code, reason }, 'closed before welcome');
        this.#options.matcher.unreachable(base);
      }
      if (!this.#stopped && this.#started) this.#scheduleReconnect();
    });
  }

  /**
   * Once per connection: from its 'open' once start() was called, or from start() on a connection
   * opened early (whose 'open' came before start() and said nothing).
   */
  #sayHello(socket: WebSocket): void {
    const { hello } = this.#options;
    this.#sendNow(
      { type: 'hello', ...(typeof hello === 'function' ? hello() : hello), holding: this.#holding() },
      true,
    );
    this.#welcomeTimer = setTimeout(() => {
      this.#logger.warn({ timeoutMs: this.#options.welcomeTimeoutMs }, 'no welcome from matcher');
      socket.terminate();
    }, this.#options.welcomeTimeoutMs);
  }

  /** The link stops for good; the loop hears why (at once, or when it starts). */
  #fail(fatal: PilothouseError): void {
    this.#stopped = true;
    this.#logger.error({ code: fatal.code, err: fatal.message }, 'matcher link failed');
    if (this.#started) this.emit('fatal', fatal);
    else this.#failedBeforeStart = fatal;
  }

  /** Handles one inbound frame; returns an error when the link must stop for good. */
  #onFrame(frame: string): PilothouseError | null {
    let message: MatcherMessage;
    try {
      message = parseMatcherMessage(frame);
    } catch (error) {
      const failure =
        error instanceof PilothouseError ? error : new PilothouseError('PROTOCOL_VIOLATION', String(error));
      if (failure.code === 'PROTOCOL_VERSION') return failure;
      const unreadable = this.#welcomed ? salvageMatch(frame, failure.message) : null;
      if (unreadable !== null) {
        this.#logger.error(
          { jobId: unreadable.jobId, attempt: unreadable.attempt, err: failure.message },
          'unreadable match',
        );
        this.emit('message', unreadable);
        return null;
      }
      this.#logger.warn({ code: failure.code, err: failure.message }, 'invalid frame ignored');
      return null;
    }
    if (!this.#welcomed) {
      if (message.type !== 'welcome') {
        this.#logger.warn({ type: message.type }, 'frame before welcome ignored');
        return null;
      }
      this.#onWelcome(message);
      return null;
    }
    switch (message.type) {
      case 'welcome':
        this.#logger.warn('second welcome ignored');
        return null;
      case 'ack':
        this.#onAck(message.ref, message.refused);
        return null;
      case 'error':
        if (message.ref !== undefined && this.#logInflight?.ref === message.ref) {
          // The matcher will not take this batch (too big, or it keeps no more lines): drop it.
          this.#onAck(message.ref);
          return null;
        }
        if (message.ref !== undefined && this.#inflight.has(message.ref)) {
          this.#onReportRefused(message.ref, message.code, message.message);
          return null;
        }
        this.#logger.warn({ code: message.code, ref: message.ref, err: message.message }, 'matcher error');
        this.emit('message', message);
        return null;
      default:
        this.emit('message', message);
        return null;
    }
  }

  #onWelcome(welcome: WelcomeMessage): void {
    if (this.#welcomeTimer !== null) clearTimeout(this.#welcomeTimer);
    this.#welcomeTimer = null;
    this.#welcomed = true;
    this.#failedAttempts = 0;
    this.#nextRef = 1;
    this.#pingsOut = 0;
    this.#logger.info({ pilotId: welcome.pilotId, replayed: this.#outbox.length }, 'connected');
    this.#pingTimer = setInterval(() => this.#ping(), welcome.heartbeatIntervalMs);
    this.#sendQueuedReports();
    const beat = this.#pendingHeartbeat;
    this.#pendingHeartbeat = null;
    if (beat !== null) {
      this.#sendNow({
        type: 'heartbeat',
        ref: this.#nextRef++,
        jobs: beat.jobs,
        at: beat.at,
        ...(beat.node === undefined ? {} : { node: beat.node }),
      });
    }
    this.#logInflight = null;
    this.#sendLogBatch();
    this.#logTimer = setInterval(() => this.#sendLogBatch(), this.#options.logFlushMs);
    this.emit('connected', welcome);
  }

  /** Sends the next batch of log lines, unless one is in flight. Logs nothing itself (no feedback loop). */
  #sendLogBatch(): boolean {
    if (!this.#welcomed || this.#logInflight !== null || this.#logLines.length === 0) return false;
    const lines: { seq: number; line: string }[] = [];
    let bytes = 0;
    for (const entry of this.#logLines) {
      // As sent: escapes and multi-byte characters can make a line six times its length.
      const entryBytes = Buffer.byteLength(JSON.stringify(entry.line)) + 32;
      if (lines.length >= MAX_LOG_BATCH_LINES || (lines.length > 0 && bytes + entryBytes > MAX_LOG_BATCH_BYTES)) break;
      lines.push(entry);
      bytes += entryBytes;
    }
    const ref = this.#nextRef++;
    const dropped = this.#logDropped;
    if (!this.#sendNow({ type: 'log', ref, lines, ...(dropped > 0 ? { dropped } : {}) })) return false;
    this.#logInflight = { ref, count: lines.length, dropped };
    return true;
  }

  /** At close: send what is left of the log and wait (briefly) for the matcher to take it. */
  async #flushLogsBeforeBye(): Promise<void> {
    const deadline = this.#options.now() + this.#options.logCloseTimeoutMs;
    while (this.#welcomed && this.#logLines.length > 0 && this.#options.now() < deadline) {
      if (this.#logInflight === null && !this.#sendLogBatch()) return;
      const acked = new Promise<void>((resolve) => {
        this.#logAcked = resolve;
        setTimeout(resolve, Math.max(0, deadline - this.#options.now())).unref();
      });
      await acked;
      this.#logAcked = null;
    }
  }

  #onAck(ref: number, refused: readonly RefusedAttempt[] = []): void {
    if (this.#logInflight?.ref === ref) {
      this.#logLines.splice(0, this.#logInflight.count);
      this.#logDropped -= this.#logInflight.dropped;
      this.#logInflight = null;
      this.#logAcked?.();
      return;
    }
    const entries = this.#inflight.get(ref);
    if (entries === undefined) return; // a heartbeat's ack, or one from before a replay
    this.#inflight.delete(ref);
    // A frame of several attempts is stored but for the attempts it names: those are refused for good.
    for (const attempt of refused) {
      const reports = entries.filter(
        ({ body }) => body.jobId === attempt.jobId && body.attempt === attempt.attempt,
      ).length;
      this.#logger.error(
        { code: attempt.code, err: attempt.message, jobId: attempt.jobId, attempt: attempt.attempt, reports },
        'report dropped',
      );
    }
    this.#removeFromOutbox(entries);
  }

  #onReportRefused(ref: number, code: string, text: string): void {
    const entries = this.#inflight.get(ref);
    if (entries === undefined) return;
    this.#inflight.delete(ref);
    // The checks that refuse a report are about its attempt: they hold for every report of the frame.
    const entry = entries[0] as OutboxEntry;
    const nowMs = this.#options.now();
    for (const each of entries) {
      each.refusals += 1;
      each.firstRefusedMs ??= nowMs;
    }
    const retryable = isErrorCode(code) && ERROR_CODES[code].retryable;
    const refusedForMs = nowMs - (entry.firstRefusedMs ?? nowMs);
    const context = {
      code,
      err: text,
      jobId: entry.body.jobId,
      attempt: entry.body.attempt,
      refusals: entry.refusals,
      refusedForMs,
      reports: entries.length,
    };
    if (retryable && refusedForMs < this.#options.reportRetryBudgetMs) {
      // Re-sending on this connection would break the order of reports: reconnect and replay instead.
      this.#logger.warn(context, 'report refused, will replay');
      this.#socket?.terminate();
      return;
    }
    this.#logger.error(context, 'report dropped');
    this.#removeFromOutbox(entries);
  }

  #removeFromOutbox(entries: readonly OutboxEntry[]): void {
    const removed = new Set(entries);
    const kept = this.#outbox.filter((entry) => !removed.has(entry));
    this.#outbox.splice(0, this.#outbox.length, ...kept);
    if (this.#outbox.length === 0) this.emit('drained');
  }

  /**
   * Every queued report not yet sent on this connection leaves now, grouped per attempt; the groups
   * of several attempts (jobs that ended together) share frames.
   */
  #sendQueuedReports(): void {
    this.#reportsDueNow = false;
    if (this.#reportTimer !== null) clearTimeout(this.#reportTimer);
    this.#reportTimer = null;
    if (!this.#welcomed) return;
    const inFlight = new Set([...this.#inflight.values()].flat());
    const queued = this.#outbox.filter((entry) => !inFlight.has(entry));
    const groups = groupReportsIntoFrames(queued, MAX_REPORT_FRAME_CHARS);
    for (const frame of packAttemptsIntoFrames(groups, MAX_REPORT_FRAME_CHARS)) this.#sendReportFrame(frame);
  }

  /** One attempt's reports as a job.status frame, several attempts' as one job.statuses frame. */
  #sendReportFrame(groups: OutboxEntry[][]): void {
    const ref = this.#nextRef++;
    const attemptReports = groups.map((entries) => {
      const latest = (entries.at(-1) as OutboxEntry).body;
      const earlier = entries.slice(0, -1).map(({ body: { jobId: _jobId, attempt: _attempt, ...fields } }) => fields);
      return { ...latest, ...(earlier.length > 0 && { earlier }) };
    });
    const [only] = attemptReports;
    const body: PilotMessageBody =
      attemptReports.length === 1 && only !== undefined
        ? { type: 'job.status', ref, ...only }
        : { type: 'job.statuses', ref, reports: attemptReports };
    if (this.#sendNow(body)) this.#inflight.set(ref, groups.flat());
  }

  #sendNow(body: PilotMessageBody, beforeWelcome = false): boolean {
    const socket = this.#socket;
    if (socket === null || socket.readyState !== WebSocket.OPEN || (!beforeWelcome && !this.#welcomed)) return false;
    socket.send(encodeMessage(body));
    return true;
  }

  #ping(): void {
    const socket = this.#socket;
    if (socket === null) return;
    if (this.#pingsOut >= this.#options.maxPingsOut) {
      this.#logger.warn({ pingsOut: this.#pingsOut }, 'matcher unresponsive');
      socket.terminate();
      return;
    }
    this.#pingsOut += 1;
    socket.ping();
  }

  #scheduleReconnect(): void {
    const attempt = this.#failedAttempts++;
    const delayMs = backoffDelayMs(attempt, this.#options.backoff, this.#options.random);
    this.#logger.info({ attempt: attempt + 1, delayMs }, 'reconnecting');
    this.emit('reconnecting', { attempt: attempt + 1, delayMs });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (!this.#stopped) this.#connect();
    }, delayMs);
  }

  #clearTimers(): void {
    for (const timer of [this.#reconnectTimer, this.#welcomeTimer, this.#reportTimer]) {
      if (timer !== null) clearTimeout(timer);
    }
    this.#reportTimer = null;
    this.#reportsDueNow = false;
    if (this.#pingTimer !== null) clearInterval(this.#pingTimer);
    if (this.#logTimer !== null) clearInterval(this.#logTimer);
    this.#reconnectTimer = null;
    this.#welcomeTimer = null;
    this.#pingTimer = null;
    this.#logTimer = null;
  }
}

function rawDataToString(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

/** The job and offer a match frame names, when the frame as a whole failed validation. */
export function salvageMatch(frame: string, reason: string): UnreadableMatch | null {
  let value: unknown;
  try {
    value = JSON.parse(frame);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { type, offerId, matchSeq, job, following } = value as Record<string, unknown>;
  if (type !== 'match' || typeof offerId !== 'string' || typeof job !== 'object' || job === null) return null;
  const { jobId, attempt } = job as Record<string, unknown>;
  const positive = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) > 0;
  if (!positive(jobId) || !positive(attempt)) return null;
  return {
    type: 'match.unreadable',
    offerId,
    matchSeq: Number.isSafeInteger(matchSeq) ? (matchSeq as number) : 0,
    following: Number.isSafeInteger(following) && (following as number) > 0 ? (following as number) : 0,
    jobId,
    attempt,
    reason: reason.slice(0, 1024),
  };
}
