/**
 * Runs matched jobs on this node, the way DIRAC's JobWrapper does: fresh working directory, input
 * sandbox, payload (execa, no shell, own process group, std.out/std.err streamed to files), wall-clock
 * limit, application status file, output sandbox, final status. Every step is told to the caller
 * through `onStatus` with DIRAC's status and minor status strings; `done` resolves with the outcome
 * and never rejects.
 *
 * The runner's watchdog samples every running job on one timer (one /proc read for all of them):
 * process-tree CPU and RSS, the job directory's disk use and the working area's free disk; it stops
 * a job that exceeds its memory, makes no CPU progress, or when the disk fills (pilot/watchdog.ts).
 * Heartbeats report the latest sample.
 */
import os from 'node:os';
import { mkdir, open, rm, stat, chmod } from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { JobStatus } from '../shared/job/status.ts';
import type { GpuInfo, MatchedJob } from '../shared/protocol/messages.ts';
import { APP_STATUS_FILE_NAME, readApplicationStatus } from './app-status.ts';
import { gpuEnvironment } from './gpu-probe.ts';
import { findOnPath, NO_ISOLATION, type JobConfinement, type PayloadIsolation } from './isolation.ts';
import type { HeartbeatJob } from './matcher-link.ts';
import { selectOutputFiles } from './output-files.ts';
import { withJobId } from './job-id-placeholder.ts';
import { readAllProcesses, terminateTree, treeOf, treeUsage, usageOf } from './process-tree.ts';
import { freeDiskMB } from './probe.ts';
import {
  diskFullVictim,
  directoryUsageMB,
  JobWatch,
  type MemoryLimitPolicy,
  type WatchdogVerdict,
} from './watchdog.ts';
import { packSandbox, sha256File, unpackSandbox, type UnpackLimits } from './sandbox-archive.ts';
import type { SandboxTransfer } from './sandbox-transfer.ts';
import { OutputTailReader } from './output-tail.ts';
import type { OutputTail } from '../shared/protocol/messages.ts';
import { attemptKey } from '../shared/job/attempt-key.ts';

export const MINOR = {
  initialization: 'Job Initialization',
  downloadingInput: 'Downloading InputSandbox',
  inputFailed: 'Failed Downloading InputSandbox',
  application: 'Application',
  notFound: 'Application not found',
  notStarted: 'Application could not be started',
  finishedOk: 'Application Finished Successfully',
  finishedErrors: 'Application Finished With Errors',
  uploadingOutput: 'Uploading Output Sandbox',
  outputUploaded: 'Output Sandbox Uploaded',
  outputFailed: 'Failed Uploading Output Sandbox',
  complete: 'Execution Complete',
  wallTime: 'Job has exceeded maximum wall clock time',
  memory: 'Job has exceeded its memory limit',
  stalled: 'Watchdog identified this job as stalled',
  diskFull: 'Job has insufficient disk space to continue',
  killed: 'Received Kill signal',
  pilotTerminated: 'Pilot terminated',
  drainTimeout: 'Pilot drain grace time expired',
  internal: 'Pilot Internal Error',
} as const;

export interface StatusUpdate {
  status?: JobStatus;
  minorStatus?: string;
  applicationStatus?: string;
  exitCode?: number;
  outputSandbox?: string;
  /** The payload's last output, sent with the report that it ended. */
  outputTail?: OutputTail;
}

export interface JobOutcome {
  status: 'Done' | 'Failed';
  minorStatus: string;
  exitCode?: number;
  outputSandbox?: string;
}

/**
 * `command`: the matcher said kill; `pilot-terminated`: the pilot is going down hard (second SIGTERM,
 * lost credentials); `drain-timeout`: the pilot was drained and the job outlived the grace time.
 */
export type KillReason = 'command' | 'pilot-terminated' | 'drain-timeout';

export interface RunningJob {
  readonly jobId: number;
  readonly attempt: number;
  readonly cores: number;
  readonly done: Promise<JobOutcome>;
  kill(reason: KillReason): void;
  usage(): Promise<HeartbeatJob>;
}

/** What the loop needs from a runner. */
export interface JobRunnerPort {
  /** `logger` (when given) carries the caller's context, e.g. the pilot id; the runner adds the job's. */
  start(job: MatchedJob, onStatus: (update: StatusUpdate) => void, logger?: Logger): RunningJob;
}

export interface WatchdogOptions {
  /** How often running jobs are sampled and judged. */
  intervalMs: number;
  memoryPolicy: MemoryLimitPolicy;
  /** 0 = no stall check. */
  stallTimeoutMs: number;
  stallMinCpuRatio: number;
  /** Below this much free disk in the working area, the job that wrote the most is stopped. */
  minFreeDiskMB: number;
  /** Job directories are measured this often (a walk of the tree; cheap, but not free). */
  diskCheckIntervalMs: number;
}

export const DEFAULT_WATCHDOG: WatchdogOptions = {
  intervalMs: 5_000,
  memoryPolicy: 'kill',
  stallTimeoutMs: 0,
  stallMinCpuRatio: 0.01,
  minFreeDiskMB: 0,
  diskCheckIntervalMs: 30_000,
};

/** What the watchdog saw of the node on its last tick. */
export interface NodeSample {
  /** Free disk in the working area, MB (null when it cannot be read). */
  freeDiskMB: number | null;
  /** Disk written by each running job (by `jobId:attempt`), MB. */
  usedByJobMB: ReadonlyMap<string, number>;
  load1: number;
}

export interface JobRunnerOptions {
  /** The pilot's working directory; each job gets `job-<id>-<attempt>/` in it. */
  workdir: string;
  site: string;
  ce: string | null;
  queue?: string | null;
  pilotStamp?: string;
  /** The slot's GPUs, to name models in a job's environment (the grant carries the ids). */
  gpus?: readonly GpuInfo[];
  watchdog?: Partial<WatchdogOptions>;
  /** Called after every watchdog tick (the slot learns the disk; heartbeats read the node). */
  onNodeSample?: (sample: NodeSample) => void;
  keepWorkdirs: boolean;
  killGraceMs: number;
  appStatusPollMs: number;
  maxOutputSandboxBytes: number;
  unpackLimits: UnpackLimits;
  transfer: SandboxTransfer;
  /** The environment payloads inherit (the pilot's own, minus its secrets). */
  baseEnv: NodeJS.ProcessEnv;
  /** How payloads are kept from the pilot's credentials and from each other (default: not at all). */
  isolation?: PayloadIsolation;
  clock: Clock;
  logger: Logger;
}

/** Never handed to payloads. */
const PILOT_SECRETS = ['PILOTHOUSE_TOKEN'];

export class JobRunner implements JobRunnerPort {
  readonly #options: JobRunnerOptions;
  readonly #watchdog: WatchdogOptions;
  readonly #executions = new Set<JobExecution>();
  #timer: NodeJS.Timeout | null = null;
  #ticking = false;
  #lastDiskCheckMs = 0;
  #usedByJobMB = new Map<string, number>();
  #node: NodeSample = { freeDiskMB: null, usedByJobMB: new Map(), load1: 0 };

  constructor(options: JobRunnerOptions) {
    this.#options = options;
    this.#watchdog = { ...DEFAULT_WATCHDOG, ...options.watchdog };
  }

  start(job: MatchedJob, onStatus: (update: StatusUpdate) => void, logger?: Logger): RunningJob {
    const execution = new JobExecution(job, onStatus, this.#options, this.#watchdog, logger ?? this.#options.logger);
    this.#executions.add(execution);
    this.#timer ??= setInterval(() => void this.#tick(), this.#watchdog.intervalMs);
    void execution.done.finally(() => {
      this.#executions.delete(execution);
      this.#usedByJobMB.delete(execution.key);
      if (this.#executions.size === 0 && this.#timer !== null) {
        clearInterval(this.#timer);
        this.#timer = null;
      }
    });
    return execution;
  }

  /** The node as the watchdog last saw it (load, free disk). */
  nodeSample(): NodeSample {
    return { ...this.#node, load1: os.loadavg()[0] ?? 0 };
  }

  /** One watchdog pass over every running job; also run by tests. */
  async tick(): Promise<void> {
    await this.#tick();
  }

  async #tick(): Promise<void> {
    if (this.#ticking) return; // a slow /proc or disk walk: skip a beat rather than pile up
    this.#ticking = true;
    try {
      const now = this.#options.clock.nowMs();
      const all = await readAllProcesses();
      const measureDisk = now - this.#lastDiskCheckMs >= this.#watchdog.diskCheckIntervalMs;
      if (measureDisk) this.#lastDiskCheckMs = now;
      await Promise.all(
        [...this.#executions].map(async (execution) => {
          if (measureDisk) this.#usedByJobMB.set(execution.key, await directoryUsageMB(execution.dir));
          execution.sample(all, now, this.#usedByJobMB.get(execution.key) ?? 0);
        }),
      );
      const freeMB = await freeDiskMB(this.#options.workdir);
      this.#node = { freeDiskMB: freeMB, usedByJobMB: new Map(this.#usedByJobMB), load1: os.loadavg()[0] ?? 0 };
      if (this.#watchdog.minFreeDiskMB > 0) {
        const victim = diskFullVictim(freeMB, this.#watchdog.minFreeDiskMB, this.#usedByJobMB);
        if (victim !== null) {
          for (const execution of this.#executions) {
            if (execution.key === victim) execution.diskFull(freeMB ?? 0, this.#watchdog.minFreeDiskMB);
          }
        }
      }
      this.#options.onNodeSample?.(this.#node);
    } catch (error) {
      this.#options.logger.warn({ err: error }, 'watchdog pass failed');
    } finally {
      this.#ticking = false;
    }
  }
}

type StopReason = KillReason | 'wall-time' | 'memory' | 'stalled' | 'disk';
/** Stops decided on this node about the job itself: the output sandbox is still worth uploading. */
const LIMIT_STOPS: ReadonlySet<StopReason> = new Set(['wall-time', 'memory', 'stalled', 'disk']);
const LIMIT_MINOR: Record<'wall-time' | 'memory' | 'stalled' | 'disk', string> = {
  'wall-time': MINOR.wallTime,
  memory: MINOR.memory,
  stalled: MINOR.stalled,
  disk: MINOR.diskFull,
};

class JobExecution implements RunningJob {
  readonly jobId: number;
  readonly attempt: number;
  readonly cores: number;
  readonly key: string;
  readonly dir: string;
  readonly done: Promise<JobOutcome>;
  readonly #job: MatchedJob;
  readonly #report: (update: StatusUpdate) => void;
  readonly #options: JobRunnerOptions;
  readonly #logger: Logger;
  readonly #dir: string;
  readonly #outputTail: OutputTailReader;
  readonly #staging: string;
  readonly #startMs: number;
  readonly #watch: JobWatch;
  #lastSample: { cpuSec: number; rssMB: number; diskMB: number } | null = null;
  readonly #abort = new AbortController();
  #stopReason: StopReason | null = null;
  #pid: number | null = null;
  #killing: Promise<void> | null = null;
  #payloadEnded = false;
  #keepDir = false;
  #appStatus: string | null = null;
  /** The application-status reads, chained so that none reports after the final one. */
  #appPoll: Promise<unknown> = Promise.resolve();

  constructor(
    job: MatchedJob,
    onStatus: (update: StatusUpdate) => void,
    options: JobRunnerOptions,
    watchdog: WatchdogOptions,
    logger: Logger,
  ) {
    this.#job = { ...job, description: withJobId(job.description, job.jobId) };
    this.jobId = job.jobId;
    this.attempt = job.attempt;
    this.cores = job.cores;
    this.key = attemptKey(job.jobId, job.attempt);
    this.#report = onStatus;
    this.#options = options;
    this.#logger = logger.child({ jobId: job.jobId, attempt: job.attempt });
    this.#dir = path.join(options.workdir, `job-${job.jobId}-${job.attempt}`);
    this.dir = this.#dir;
    this.#outputTail = new OutputTailReader(
      path.join(this.#dir, this.#job.description.stdout),
      path.join(this.#dir, this.#job.description.stderr),
    );
    this.#staging = path.join(options.workdir, `.staging-${job.jobId}-${job.attempt}`);
    this.#startMs = options.clock.nowMs();
    this.#watch = new JobWatch({
      memoryMB: job.memoryMB ?? memoryAskedMB(job),
      memoryPolicy: watchdog.memoryPolicy,
      stallTimeoutMs: watchdog.stallTimeoutMs,
      stallMinCpuRatio: watchdog.stallMinCpuRatio,
    });
    this.done = this.#run()
      .catch((error: unknown) => {
        this.#logger.error({ err: error }, 'job runner failed');
        return this.#finish(
          { status: 'Failed', minorStatus: MINOR.internal },
          { applicationStatus: truncate(String(error)) },
        );
      })
      .then(async (outcome) => {
        await rm(this.#staging, { recursive: true, force: true }).catch(() => {});
        // Nothing is left behind (DIRAC's CleanUpFlag), except the directory of a job whose output
        // could not be uploaded: its files are the only copy.
        if (!options.keepWorkdirs && !this.#keepDir)
          await rm(this.#dir, { recursive: true, force: true }).catch(() => {});
        return outcome;
      });
  }

  kill(reason: KillReason): void {
    // A kill from outside overrides a limit stop (its upload is cut short too), never another kill.
    if (this.#stopReason !== null && !LIMIT_STOPS.has(this.#stopReason)) return;
    this.#stop(reason);
  }

  async usage(): Promise<HeartbeatJob> {
    const wallSec = Math.max(0, (this.#options.clock.nowMs() - this.#startMs) / 1000);
    let sample = this.#lastSample;
    if (sample === null && this.#pid !== null) {
      const tree = await treeUsage(this.#pid);
      sample = { cpuSec: tree.cpuSec, rssMB: tree.rssMB, diskMB: 0 };
    }
    sample ??= { cpuSec: 0, rssMB: 0, diskMB: 0 };
    const outputTail = this.#pid === null ? undefined : await this.#outputTail.changed();
    return {
      jobId: this.jobId,
      attempt: this.attempt,
      cpuSec: sample.cpuSec,
      rssMB: sample.rssMB,
      wallSec,
      diskMB: sample.diskMB,
      ...(outputTail && { outputTail }),
    };
  }

  /** The watchdog's sample of this job (from a snapshot of all processes) and its verdict. */
  sample(all: Parameters<typeof treeOf>[0], atMs: number, diskMB: number): void {
    if (this.#pid === null || this.#payloadEnded) {
      this.#lastSample = this.#lastSample === null ? null : { ...this.#lastSample, diskMB };
      return;
    }
    const usage = usageOf(treeOf(all, this.#pid));
    this.#lastSample = { cpuSec: usage.cpuSec, rssMB: usage.rssMB, diskMB };
    if (this.#stopReason !== null) return;
    this.#act(this.#watch.assess({ atMs, cpuSec: usage.cpuSec, rssMB: usage.rssMB }));
  }

  /** The working area is (nearly) full and this job wrote the most. */
  diskFull(freeMB: number, minFreeMB: number): void {
    if (this.#stopReason !== null || this.#payloadEnded) return;
    this.#logger.warn(
      { freeMB, minFreeMB, usedMB: this.#lastSample?.diskMB },
      'disk full: stopping the job that wrote the most',
    );
    this.#stop('disk');
  }

  #act(verdict: WatchdogVerdict): void {
    switch (verdict.kind) {
      case 'ok':
        return;
      case 'memory-warning':
        this.#logger.warn({ rssMB: verdict.rssMB, limitMB: verdict.limitMB }, 'job exceeds its memory (policy: warn)');
        return;
      case 'memory':
        this.#logger.warn({ rssMB: verdict.rssMB, limitMB: verdict.limitMB }, 'job exceeds its memory: stopping it');
        this.#stop('memory');
        return;
      case 'stalled':
        this.#logger.warn(
          { cpuSec: verdict.cpuSec, windowSec: verdict.windowSec },
          'job made no CPU progress: stopping it',
        );
        this.#stop('stalled');
        return;
    }
  }

  #stop(reason: StopReason): void {
    this.#stopReason = reason;
    this.#logger.warn({ reason }, 'job kill requested');
    // A limit stop still uploads the output sandbox; the other reasons cut every transfer short.
    if (!LIMIT_STOPS.has(reason)) this.#abort.abort(new Error(`job stopped: ${reason}`));
    if (this.#pid !== null && this.#killing === null && !this.#payloadEnded) {
      this.#killing = terminateTree(
        this.#pid,
        reason === 'pilot-terminated' ? Math.min(this.#options.killGraceMs, 2_000) : this.#options.killGraceMs,
      );
    }
  }

  async #run(): Promise<JobOutcome> {
    const { description } = this.#job;
    await rm(this.#dir, { recursive: true, force: true });
    await mkdir(this.#dir, { recursive: true });
    const isolation = this.#isolation.name;
    this.#logger.info({ dir: this.#dir, cores: this.cores, isolation }, 'job started');
    // The job's history says how its payload was isolated (a site's choice the owner may care about).
    this.#report({ status: 'Running', minorStatus: `${MINOR.initialization} (isolation: ${isolation})` });

    if (description.inputSandbox.length > 0) {
      this.#report({ minorStatus: MINOR.downloadingInput });
      try {
        await this.#fetchInputSandboxes(description.inputSandbox);
      } catch (error) {
        if (this.#stopReason !== null) return this.#stoppedOutcome();
        this.#logger.warn({ err: errorMessage(error) }, 'input sandbox failed');
        return this.#finish(
          { status: 'Failed', minorStatus: MINOR.inputFailed },
          { applicationStatus: truncate(errorMessage(error)) },
        );
      }
    }
    if (this.#stopReason !== null) return this.#stoppedOutcome();

    const exit = await this.#runPayload();
    if (exit.kind === 'not-started') {
      return this.#finish(
        {
          status: 'Failed',
          minorStatus: exit.code === 'ENOENT' || exit.code === 'EACCES' ? MINOR.notFound : MINOR.notStarted,
        },
        { applicationStatus: truncate(exit.message) },
      );
    }
    await this.#appPoll;
    // The last line the payload wrote goes with the final status, even if a poll already forwarded it.
    const appStatus = (await this.#pollApplicationStatus(false)) ?? this.#appStatus;
    const appUpdate = appStatus === null ? {} : { applicationStatus: appStatus };
    const outputTail = await this.#outputTail.changed(true);

    if (this.#stopReason !== null && !LIMIT_STOPS.has(this.#stopReason)) return this.#stoppedOutcome(appUpdate);

    let failed: JobOutcome;
    const limit = this.#stopReason;
    if (limit !== null) {
      failed = { status: 'Failed', minorStatus: LIMIT_MINOR[limit as keyof typeof LIMIT_MINOR] };
      this.#report({ status: 'Completing', minorStatus: MINOR.uploadingOutput, ...appUpdate, outputTail });
    } else {
      const ok = exit.exitCode === 0;
      this.#report({
        status: 'Completing',
        minorStatus: ok ? MINOR.finishedOk : MINOR.finishedErrors,
        ...appUpdate,
        outputTail,
      });
      this.#report({ minorStatus: MINOR.uploadingOutput });
      failed = {
        status: 'Failed',
        minorStatus:
          exit.exitCode !== null
            ? `${MINOR.finishedErrors} (exit code ${exit.exitCode})`
            : `${MINOR.finishedErrors} (killed by ${exit.signal ?? 'a signal'})`,
        ...(exit.exitCode === null ? {} : { exitCode: exit.exitCode }),
      };
    }

    let upload: { ref: string; missing: string[] };
    try {
      upload = await this.#uploadOutputSandbox();
    } catch (error) {
      if (this.#stopReason !== null && !LIMIT_STOPS.has(this.#stopReason)) return this.#stoppedOutcome();
      this.#logger.warn({ err: errorMessage(error) }, 'output sandbox failed');
      this.#keepDir = true;
      // After a limit stop, the limit is the job's story; the failed upload is in the pilot's log.
      if (limit !== null) return this.#finish(failed, { applicationStatus: truncate(errorMessage(error)) });
      const exitCode = exit.exitCode === null ? {} : { exitCode: exit.exitCode };
      return this.#finish(
        { status: 'Failed', minorStatus: MINOR.outputFailed, ...exitCode },
        { applicationStatus: truncate(errorMessage(error)) },
      );
    }
    const outputSandbox = upload.ref;
    const missing = upload.missing.length === 0 ? '' : ` (missing: ${truncate(upload.missing.join(', '), 900)})`;
    this.#report({ minorStatus: `${MINOR.outputUploaded}${missing}`, outputSandbox });
    if (!this.#options.keepWorkdirs) await rm(this.#dir, { recursive: true, force: true });

    if (this.#stopReason === null && exit.exitCode === 0) {
      return this.#finish({ status: 'Done', minorStatus: MINOR.complete, exitCode: 0, outputSandbox });
    }
    return this.#finish({ ...failed, outputSandbox });
  }

  #stoppedOutcome(extra: StatusUpdate = {}): JobOutcome {
    const reason = this.#stopReason;
    const minorStatus =
      reason === 'pilot-terminated'
        ? MINOR.pilotTerminated
        : reason === 'drain-timeout'
          ? MINOR.drainTimeout
          : reason === 'command' || reason === null
            ? MINOR.killed
            : LIMIT_MINOR[reason];
    return this.#finish({ status: 'Failed', minorStatus }, extra);
  }

  #finish(outcome: JobOutcome, extra: StatusUpdate = {}): JobOutcome {
    this.#report({ ...extra, ...outcome });
    this.#logger.info(
      { status: outcome.status, minorStatus: outcome.minorStatus, exitCode: outcome.exitCode },
      'job finished',
    );
    return outcome;
  }

  async #fetchInputSandboxes(refs: readonly string[]): Promise<void> {
    const { transfer, unpackLimits } = this.#options;
    for (const [index, ref] of refs.entries()) {
      const archive = path.join(await this.#stagingDir(), `input-${index}.tar.gz`);
      try {
        await transfer.download(ref, this.#job.jobToken, archive, this.#abort.signal);
        const summary = await unpackSandbox(archive, this.#dir, unpackLimits);
        this.#logger.info({ ref, ...summary }, 'input sandbox unpacked');
      } finally {
        await rm(archive, { force: true });
      }
    }
  }

  /** Sandbox archives wait here, in a directory only the pilot can open (jobs may run under other uids). */
  async #stagingDir(): Promise<string> {
    await mkdir(this.#staging, { recursive: true, mode: 0o700 });
    return this.#staging;
  }

  get #isolation(): PayloadIsolation {
    return this.#options.isolation ?? NO_ISOLATION;
  }

  async #runPayload(): Promise<
    | { kind: 'not-started'; code: string; message: string }
    | { kind: 'exited'; exitCode: number | null; signal: string | null }
  > {
    const { description } = this.#job;
    const executable = await this.#resolveExecutable(description.executable);
    const env = this.#environment();
    if (this.#isolation.name !== 'none' && !(await executableExists(executable, env['PATH'] ?? ''))) {
      // Inside a container the launcher, not the payload, would fail to start: tell it the same way.
      return { kind: 'not-started', code: 'ENOENT', message: `cannot execute ${description.executable}: not found` };
    }
    const stdout = await open(path.join(this.#dir, this.#job.description.stdout), 'w');
    const stderr = await open(path.join(this.#dir, this.#job.description.stderr), 'w');
    let wallTimer: NodeJS.Timeout | null = null;
    let appTimer: NodeJS.Timeout | null = null;
    let confinement: JobConfinement | null = null;
    try {
      confinement = await this.#isolation.confine(this.#dir);
      const launch = confinement.launch(executable, description.arguments);
      // Loaded with the first payload, not at the pilot's start (which it would slow).
      const { execa } = await import('execa');
      const subprocess = execa(launch.file, launch.args, {
        cwd: this.#dir,
        env: { ...env, ...launch.env },
        extendEnv: false,
        ...(launch.uid === undefined ? {} : { uid: launch.uid, gid: launch.gid }),
        stdin: 'ignore',
        // File descriptors, not streams: the payload writes straight to the files, nothing is buffered
        // here, and background children holding them open do not delay the exit. (execa's types only
        // spell out fds 3-9; any open descriptor works.)
        stdout: stdout.fd as 3,
        stderr: stderr.fd as 3,
        detached: true, // own process group: the whole tree can be killed at once
        cleanup: false,
        reject: false,
        buffer: false,
      });
      subprocess.once('spawn', () => {
        this.#pid = subprocess.pid ?? null;
        this.#logger.info({ pid: this.#pid, executable }, 'payload started');
        this.#report({ status: 'Running', minorStatus: MINOR.application });
        if (this.#stopReason !== null) this.#stop(this.#stopReason);
        const wallTimeMs = description.requirements.wallTimeSec * 1000;
        wallTimer = setTimeout(() => {
          if (this.#stopReason === null) this.#stop('wall-time');
        }, wallTimeMs);
        appTimer = setInterval(() => {
          this.#appPoll = this.#appPoll.then(() => this.#pollApplicationStatus(true));
        }, this.#options.appStatusPollMs);
      });
      const result = await subprocess;
      this.#payloadEnded = true;
      if (wallTimer !== null) clearTimeout(wallTimer);
      if (appTimer !== null) clearInterval(appTimer);
      if (this.#pid === null) {
        return {
          kind: 'not-started',
          code: result.code ?? 'UNKNOWN',
          message: `cannot execute ${description.executable}: ${result.originalMessage ?? result.shortMessage}`,
        };
      }
      // Whatever the payload left behind in its group goes with it.
      await (this.#killing ?? Promise.resolve());
      await terminateTree(this.#pid, 0);
      this.#logger.info({ exitCode: result.exitCode, signal: result.signal }, 'payload exited');
      return { kind: 'exited', exitCode: result.exitCode ?? null, signal: result.signal ?? null };
    } finally {
      if (wallTimer !== null) clearTimeout(wallTimer);
      if (appTimer !== null) clearInterval(appTimer);
      await stdout.close();
      await stderr.close();
      await confinement?.release();
    }
  }

  /** No `/`: looked up on PATH. With `/`: relative to the job directory, made executable if it lives there. */
  async #resolveExecutable(executable: string): Promise<string> {
    if (!executable.includes('/')) return executable;
    const resolved = path.resolve(this.#dir, executable);
    const inside = !path.relative(this.#dir, resolved).startsWith('..');
    if (inside) {
      try {
        const { mode } = await stat(resolved);
        if ((mode & 0o100) === 0) await chmod(resolved, mode | 0o111);
      } catch {
        // Missing: execa reports ENOENT, which becomes "Application not found".
      }
    }
    return resolved;
  }

  /**
   * The payload's environment: the pilot's own (minus its secrets), the job's variables, then what the
   * pilot decides and the job may not override: its identity, slot (cores, memory, wall time) and GPUs.
   * A job granted no GPU sees none (the device variables are set empty).
   */
  #environment(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...this.#options.baseEnv };
    for (const name of PILOT_SECRETS) delete env[name];
    const gpuIds = this.#job.gpuIds ?? [];
    const gpuModels = gpuIds.map((id) => this.#options.gpus?.find((gpu) => gpu.id === id)?.model ?? 'unknown');
    return {
      ...env,
      OMP_NUM_THREADS: String(this.cores),
      ...this.#job.description.environment,
      PILOTHOUSE_JOB_ID: String(this.jobId),
      PILOTHOUSE_JOB_ATTEMPT: String(this.attempt),
      PILOTHOUSE_JOB_CORES: String(this.cores),
      PILOTHOUSE_JOB_MEMORY_MB: String(this.#job.memoryMB ?? memoryAskedMB(this.#job)),
      PILOTHOUSE_JOB_WALL_TIME_SEC: String(this.#job.description.requirements.wallTimeSec),
      PILOTHOUSE_JOB_GPU_MODELS: gpuModels.join(','),
      PILOTHOUSE_SITE: this.#options.site,
      PILOTHOUSE_CE: this.#options.ce ?? '',
      PILOTHOUSE_QUEUE: this.#options.queue ?? '',
      PILOTHOUSE_PILOT_STAMP: this.#options.pilotStamp ?? '',
      PILOTHOUSE_WORKDIR: this.#dir,
      PILOTHOUSE_APP_STATUS_FILE: path.join(this.#dir, APP_STATUS_FILE_NAME),
      ...gpuEnvironment(gpuIds.map((id) => ({ id }))),
    };
  }

  /** Reads the application status file; returns the line (and reports it if asked) when it changed. */
  async #pollApplicationStatus(report: boolean): Promise<string | null> {
    const line = await readApplicationStatus(path.join(this.#dir, APP_STATUS_FILE_NAME));
    if (line === null || line === this.#appStatus) return null;
    this.#appStatus = line;
    if (report && this.#stopReason === null) this.#report({ applicationStatus: line });
    return line;
  }

  async #uploadOutputSandbox(): Promise<{ ref: string; missing: string[] }> {
    const { transfer, maxOutputSandboxBytes } = this.#options;
    const { stdout, stderr, outputSandbox } = this.#job.description;
    const selection = await selectOutputFiles(this.#dir, outputSandbox, [stdout, stderr]);
    if (selection.missing.length > 0 || selection.refused.length > 0) {
      this.#logger.warn({ missing: selection.missing, refused: selection.refused }, 'output sandbox files skipped');
    }
    const archive = path.join(await this.#stagingDir(), 'output.tar.gz');
    try {
      await packSandbox(this.#dir, selection.files, archive);
      const { size } = await stat(archive);
      if (size > maxOutputSandboxBytes) {
        throw new Error(`output sandbox is ${size} bytes, more than the ${maxOutputSandboxBytes} allowed`);
      }
      const ref = await sha256File(archive);
      await transfer.upload(archive, ref, this.#job.jobToken, this.#abort.signal);
      this.#logger.info({ ref, bytes: size, files: selection.files.length }, 'output sandbox uploaded');
      return { ref, missing: [...selection.missing, ...selection.refused] };
    } finally {
      await rm(archive, { force: true });
    }
  }
}

async function executableExists(executable: string, searchPath: string): Promise<boolean> {
  if (!executable.includes('/')) return findOnPath(executable, searchPath) !== null;
  return stat(executable).then(
    (stats) => stats.isFile(),
    () => false,
  );
}

/** The memory a job asked for on the cores it got (when the match carries no grant). */
function memoryAskedMB(job: MatchedJob): number {
  const req = job.description.requirements;
  return (req.memoryMB ?? 0) + (req.memoryPerCoreMB ?? 0) * job.cores;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function truncate(text: string, max = 1024): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}
