/** In-memory stand-ins for the pilot loop's ports: a matcher link, a job runner, a clock. */
import { EventEmitter, once } from 'node:events';
import type { Clock } from '../../shared/clock.ts';
import { jobDescriptionSchema, type JobDescriptionInput } from '../../shared/job/description.ts';
import type { MatchedJob, OfferResources } from '../../shared/protocol/messages.ts';
import type { JobOutcome, JobRunnerPort, KillReason, RunningJob, StatusUpdate } from '../../pilot/job-runner.ts';
import type {
  ByeStats,
  HeartbeatJob,
  HeartbeatNode,
  HeldJob,
  JobStatusBody,
  LinkEvents,
  LinkInbound,
  MatcherLink,
} from '../../pilot/matcher-link.ts';

export type Outbound =
  | { type: 'offer'; offerId: string; matchSeq: number; resources: OfferResources; maxJobs: number }
  | { type: 'offer.cancel'; offerId: string }
  | { type: 'job.status'; body: JobStatusBody }
  | { type: 'heartbeat'; jobs: HeartbeatJob[]; node?: HeartbeatNode | undefined; matchSeq?: number | undefined }
  | { type: 'bye'; reason: string; stats: ByeStats };

/** Records what the loop sends; tests play the matcher by calling welcome/deliver/ack. */
export class FakeLink extends EventEmitter<LinkEvents> implements MatcherLink {
  connected = false;
  started = false;
  closedWith: string | null = null;
  readonly sent: Outbound[] = [];
  /** Emits 'frame' for every Outbound, so tests can wait for the next one. */
  readonly outbound = new EventEmitter();
  #unacked = 0;
  autoAck = true;
  /** What the loop says it holds (the real link puts it in its hello). */
  heldJobs: () => HeldJob[] = () => [];

  get pendingReports(): number {
    return this.#unacked;
  }

  start(): void {
    this.started = true;
  }

  setHeldJobs(provider: () => HeldJob[]): void {
    this.heldJobs = provider;
  }

  sendOffer(offerId: string, matchSeq: number, resources: OfferResources, maxJobs = 1): boolean {
    if (!this.connected) return false;
    this.#record({ type: 'offer', offerId, matchSeq, resources, maxJobs });
    return true;
  }

  cancelOffer(offerId: string): boolean {
    if (!this.connected) return false;
    this.#record({ type: 'offer.cancel', offerId });
    return true;
  }

  report(body: JobStatusBody): void {
    this.#unacked += 1;
    this.#record({ type: 'job.status', body });
    if (this.autoAck) queueMicrotask(() => this.ackAll());
  }

  heartbeat(jobs: HeartbeatJob[], node?: HeartbeatNode, matchSeq?: number): void {
    if (this.connected) this.#record({ type: 'heartbeat', jobs, node, matchSeq });
  }

  async close(reason: string, stats: ByeStats = {}): Promise<void> {
    if (this.connected) this.#record({ type: 'bye', reason, stats });
    this.closedWith = reason;
    this.connected = false;
  }

  welcome(pilotId = 'pilot-1', heartbeatIntervalMs = 60_000): void {
    this.connected = true;
    this.emit('connected', { type: 'welcome', v: 1, pilotId, heartbeatIntervalMs });
  }

  drop(): void {
    this.connected = false;
    this.emit('disconnected', { code: 1006, reason: '' });
  }

  deliver(message: DistributiveOmitV<LinkInbound>): void {
    this.emit('message', { ...message, v: 1 } as LinkInbound);
  }

  ackAll(): void {
    if (this.#unacked === 0) return;
    this.#unacked = 0;
    this.emit('drained');
  }

  /** Resolves with the next outbound frame of `type` (must be called before the action that sends it). */
  next<T extends Outbound['type']>(type: T): Promise<Extract<Outbound, { type: T }>> {
    return new Promise((resolve) => {
      const onFrame = (frame: Outbound): void => {
        if (frame.type !== type) return;
        this.outbound.off('frame', onFrame);
        resolve(frame as Extract<Outbound, { type: T }>);
      };
      this.outbound.on('frame', onFrame);
    });
  }

  ofType<T extends Outbound['type']>(type: T): Extract<Outbound, { type: T }>[] {
    return this.sent.filter((frame): frame is Extract<Outbound, { type: T }> => frame.type === type);
  }

  #record(frame: Outbound): void {
    this.sent.push(frame);
    this.outbound.emit('frame', frame);
  }
}

type DistributiveOmitV<T> = T extends unknown ? Omit<T, 'v'> : never;

export class FakeRunningJob implements RunningJob {
  readonly jobId: number;
  readonly attempt: number;
  readonly cores: number;
  readonly done: Promise<JobOutcome>;
  readonly killedWith: KillReason[] = [];
  readonly onStatus: (update: StatusUpdate) => void;
  #resolve: (outcome: JobOutcome) => void = () => {};

  constructor(job: MatchedJob, onStatus: (update: StatusUpdate) => void) {
    this.jobId = job.jobId;
    this.attempt = job.attempt;
    this.cores = job.cores;
    this.onStatus = onStatus;
    this.done = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    onStatus({ status: 'Running', minorStatus: 'Job Initialization' });
  }

  finish(outcome: JobOutcome = { status: 'Done', minorStatus: 'Execution Complete', exitCode: 0 }): void {
    this.onStatus(outcome);
    this.#resolve(outcome);
  }

  kill(reason: KillReason): void {
    this.killedWith.push(reason);
    this.finish({ status: 'Failed', minorStatus: reason === 'command' ? 'Received Kill signal' : 'Pilot terminated' });
  }

  async usage(): Promise<HeartbeatJob> {
    return { jobId: this.jobId, attempt: this.attempt, cpuSec: 1.5, rssMB: 10, wallSec: 2 };
  }
}

export class FakeRunner extends EventEmitter<{ start: [job: FakeRunningJob] }> implements JobRunnerPort {
  readonly jobs: FakeRunningJob[] = [];

  start(job: MatchedJob, onStatus: (update: StatusUpdate) => void): RunningJob {
    const running = new FakeRunningJob(job, onStatus);
    this.jobs.push(running);
    this.emit('start', running);
    return running;
  }

  async nextStart(): Promise<FakeRunningJob> {
    const [job] = (await once(this, 'start')) as [FakeRunningJob];
    return job;
  }
}

export class FakeClock implements Clock {
  constructor(public now = Date.parse('2026-01-01T00:00:00Z')) {}
  nowMs(): number {
    return this.now;
  }
}

export function matchedJob(
  jobId: number,
  options: { attempt?: number; cores?: number; description?: JobDescriptionInput } = {},
): MatchedJob {
  return {
    jobId,
    attempt: options.attempt ?? 1,
    owner: 'alice',
    group: 'users',
    vo: 'vo1',
    description: jobDescriptionSchema.parse(options.description ?? { executable: 'true' }),
    cores: options.cores ?? 1,
    jobToken: `job-token-${jobId}`,
  };
}
