/**
 * The one interface every computing-element backend implements (local processes, SSH hosts, SLURM,
 * HTCondor-CE, ARC REST). The site director only ever speaks to this; one conformance suite
 * (test/site-director/backend.suite.ts) runs against every implementation.
 *
 * A backend maps its batch system's native states onto pilot statuses and says why: the batch
 * system's reason (held, out of memory, preempted, time limit, ...) and the exit code when it has one.
 * Everything it hears from the CE is untrusted: an answer that cannot be parsed is CE_BAD_ANSWER,
 * never a crash.
 */
import type { PilotStatus } from '../../shared/pilot/status.ts';
import type { BackendType } from '../../shared/protocol/site-director.ts';

/** What a batch job of this queue asks for: one pilot's slot. */
export interface PilotJobResources {
  cores: number;
  memoryMB: number;
  /** Null: no limit asked (the queue's default). */
  wallTimeSec: number | null;
  gpus: number;
  wholeNode: boolean;
}

export interface PilotJob {
  stamp: string;
  /** The generated POSIX sh wrapper (it holds the pilot's one-time secret: never log it). */
  wrapper: string;
}

export interface SubmitRequest {
  /** The batch queue (SLURM partition, ARC queue, ...); backends without queues ignore it. */
  queue: string;
  resources: PilotJobResources;
  pilots: readonly PilotJob[];
  signal: AbortSignal;
}

export interface SubmittedPilot {
  stamp: string;
  /** The batch system's reference for the pilot's job. */
  ref: string;
}

export interface SubmitOutcome {
  submitted: SubmittedPilot[];
  /** Set when some (or all) pilots could not be submitted. */
  error: Error | null;
}

export interface BackendStatus {
  /** Submitted is never returned: a job the batch system knows is at least Waiting. */
  status: Exclude<PilotStatus, 'Submitted' | 'Lost'>;
  /** The batch system's own word (PENDING, 5, FINISHED, ...). */
  native: string;
  /** Why, in words, when the batch system says (a hold reason, OUT_OF_MEMORY, a time limit, ...). */
  reason: string;
  exitCode: number | null;
  /** The batch system keeps the job although it will never run (HTCondor's hold): cancel it to end it. */
  cancelToEnd?: boolean;
}

export interface FetchedOutput {
  stdout: string;
  stderr: string;
  truncated: boolean;
}

export interface BackendCapabilities {
  /** Pilots one submit call takes at most (the director splits larger batches). */
  maxPilotsPerSubmit: number;
  /** The director can fetch the wrapper's output when the pilot ends. */
  fetchesOutput: boolean;
  /** Pilots are children of the director's machine: `up` cancels them when it stops. */
  local: boolean;
}

export interface CeBackend {
  readonly type: BackendType;
  readonly capabilities: BackendCapabilities;
  /** Where it talks to, for logs and reports (never a credential). */
  readonly endpoint: string;
  submit(request: SubmitRequest): Promise<SubmitOutcome>;
  /** Status of many pilots in as few calls as the batch system allows; a ref it does not know is Unknown. */
  status(refs: readonly SubmittedPilot[], signal: AbortSignal): Promise<Map<string, BackendStatus>>;
  cancel(refs: readonly SubmittedPilot[], signal: AbortSignal): Promise<void>;
  /** The wrapper's stdout/stderr (their ends); null when the CE has none (any more). */
  fetchOutput(pilot: SubmittedPilot, signal: AbortSignal): Promise<FetchedOutput | null>;
  /**
   * The final status once the output is in: some batch systems say more in the job's output than in
   * their state (SLURM without cgroups: a memory kill is a plain FAILED).
   */
  refineFinalStatus(status: BackendStatus, output: FetchedOutput | null): BackendStatus;
  /** Removes what the pilot left on the CE side (output files, job directory). */
  clean(pilot: SubmittedPilot, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export const UNKNOWN_STATUS: BackendStatus = {
  status: 'Unknown',
  native: 'unknown',
  reason: 'the batch system does not know this job',
  exitCode: null,
};

/** Output kept per stream by backends that read files: their last bytes. */
export const OUTPUT_TAIL_BYTES = 256 * 1024;
