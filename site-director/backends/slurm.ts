/**
 * SLURM: `sbatch` (the wrapper on stdin, one job per pilot, all of a batch in one command on the login
 * node), `squeue -t all` for jobs slurmctld still holds, `sacct` for those it has purged (or
 * `scontrol show job` when accounting is off), `scancel`. Runs here or on a login node over SSH.
 *
 * Facts this code relies on (SLURM 22.05): `squeue -j A,B` silently omits unknown ids while a single
 * unknown id is an error, so ids always go as a list; `sacct --json` has wrong exit codes, so its `-P`
 * text is parsed; ExitCode is `status:signal`; `CANCELLED by <uid>` is how sacct spells a cancel; a
 * missing --output directory makes the job fail at launch, so it is created first. Without cgroups a
 * job killed for memory ends FAILED with signal 9 and slurmstepd's "Exceeded job memory limit" in its
 * output (with cgroups: OUT_OF_MEMORY); refineFromOutput tells the two apart.
 */
import { PilothouseError } from '../../shared/errors.ts';
import { lastLine, shellQuote, type CommandRunner } from '../transport/command-runner.ts';
import { exitReason } from '../wrapper/exit-codes.ts';
import { readOutputFiles } from './output-files.ts';
import {
  UNKNOWN_STATUS,
  type BackendStatus,
  type CeBackend,
  type FetchedOutput,
  type SubmitOutcome,
  type SubmitRequest,
  type SubmittedPilot,
} from './backend.ts';

export interface SlurmOptions {
  runner: CommandRunner;
  /** Where the pilots' stdout/stderr go on the submit host (created if missing). */
  outputDir: string;
  account: string | null;
  /** More sbatch options, e.g. --qos=pilot, --constraint=avx2. */
  submitOptions: readonly string[];
  /** Ask sacct about jobs slurmctld has forgotten (needs slurmdbd). */
  accounting: boolean;
  commandTimeoutMs: number;
}

const ID_CHUNK = 500;

export class SlurmBackend implements CeBackend {
  readonly type = 'slurm' as const;
  readonly capabilities = { maxPilotsPerSubmit: 50, fetchesOutput: true, local: false };
  readonly endpoint: string;
  readonly #runner: CommandRunner;
  readonly #options: SlurmOptions;

  constructor(options: SlurmOptions) {
    this.#runner = options.runner;
    this.#options = options;
    this.endpoint = `slurm+${options.runner.where}`;
  }

  sbatchArguments(request: SubmitRequest, stamp: string): string[] {
    const r = request.resources;
    const args = [
      '--parsable',
      `--job-name=pilothouse-${stamp.slice(0, 12)}`,
      `--output=${stamp}.out`,
      `--error=${stamp}.err`,
      `--partition=${request.queue}`,
      '--nodes=1',
      '--ntasks=1',
      // Only these variables reach the pilot: the director's own environment (tokens) must not.
      `--export=PATH,HOME,LANG,PILOTHOUSE_PILOT_STAMP=${stamp}`,
    ];
    if (r.wholeNode) args.push('--exclusive');
    else args.push(`--cpus-per-task=${r.cores}`);
    if (r.memoryMB > 0) args.push(`--mem=${r.memoryMB}`);
    if (r.wallTimeSec !== null) args.push(`--time=${Math.max(1, Math.ceil(r.wallTimeSec / 60))}`);
    if (r.gpus > 0) args.push(`--gpus-per-task=${r.gpus}`);
    if (this.#options.account !== null) args.push(`--account=${this.#options.account}`);
    return [...args, ...this.#options.submitOptions];
  }

  async submit(request: SubmitRequest): Promise<SubmitOutcome> {
    const boundary = `PH_WRAPPER_${request.pilots[0]?.stamp ?? 'x'}_END`;
    const calls = request.pilots.map(
      (pilot) =>
        `submit ${shellQuote(pilot.stamp)} ${this.sbatchArguments(request, pilot.stamp).map(shellQuote).join(' ')} <<'${boundary}'\n${pilot.wrapper}\n${boundary}\n`,
    );
    const script = `
dir=$1
mkdir -p "$dir" && cd "$dir" || { echo "cannot use the output directory $dir" >&2; exit 3; }
submit() {
  stamp=$1; shift
  id=$(sbatch "$@" 2>"$stamp.sbatch-err")
  rc=$?
  if [ $rc -eq 0 ]; then echo "submitted $stamp $id"
  else echo "failed $stamp $rc $(tail -n 3 "$stamp.sbatch-err" | tr '\\n' ' ')"; fi
  rm -f "$stamp.sbatch-err"
}
${calls.join('')}`;
    let result;
    try {
      result = await this.#runner.sh(script, [this.#options.outputDir], this.#timed(request.signal));
    } catch (error) {
      return { submitted: [], error: error as Error };
    }
    const submitted: SubmittedPilot[] = [];
    const failures: string[] = [];
    for (const line of result.stdout.split('\n')) {
      const ok = /^submitted (\S+) (\d+)(;\S+)?$/.exec(line);
      if (ok) submitted.push({ stamp: ok[1] as string, ref: ok[2] as string });
      const failed = /^failed (\S+) (\d+) (.*)$/.exec(line);
      if (failed) failures.push((failed[3] as string).trim());
    }
    if (submitted.length === request.pilots.length) return { submitted, error: null };
    const detail = failures[0] ?? (lastLine(result.stderr) || `exit code ${result.exitCode}`);
    return {
      submitted,
      error: new PilothouseError(classifySbatchError(detail), `${this.endpoint}: sbatch: ${detail}`),
    };
  }

  async status(refs: readonly SubmittedPilot[], signal: AbortSignal): Promise<Map<string, BackendStatus>> {
    const statuses = new Map<string, BackendStatus>();
    const ids = [...new Set(refs.map((ref) => ref.ref))];
    for (let i = 0; i < ids.length; i += ID_CHUNK) {
      const chunk = ids.slice(i, i + ID_CHUNK);
      for (const [id, status] of await this.#statusChunk(chunk, signal)) statuses.set(id, status);
    }
    return statuses;
  }

  async #statusChunk(ids: readonly string[], signal: AbortSignal): Promise<Map<string, BackendStatus>> {
    const statuses = new Map<string, BackendStatus>();
    // A single id would make an unknown job an error: a list (even of one) omits it instead.
    const list = ids.length === 1 ? `${ids[0]},${ids[0]}` : ids.join(',');
    const queue = await this.#runner.run(
      ['squeue', '-h', '-t', 'all', '-j', list, '-o', '%i|%T|%r'],
      this.#timed(signal),
    );
    if (queue.exitCode !== 0) throw commandError(this.endpoint, 'squeue', queue.stderr, queue.exitCode);
    const queued = new Map<string, { state: string; reason: string }>();
    for (const line of queue.stdout.split('\n')) {
      if (line.trim() === '') continue;
      const match = /^(\d+)\|([A-Z_]+)\|(.*)$/.exec(line.trim());
      if (!match)
        throw new PilothouseError('CE_BAD_ANSWER', `${this.endpoint}: unexpected squeue line: ${line.slice(0, 200)}`);
      queued.set(match[1] as string, { state: match[2] as string, reason: match[3] as string });
    }
    const needAccounting: string[] = [];
    for (const id of ids) {
      const entry = queued.get(id);
      if (entry && !FINAL_STATES.has(entry.state)) statuses.set(id, mapSlurmState(entry.state, entry.reason, null));
      else needAccounting.push(id); // final (its exit code is needed) or already purged
    }
    if (needAccounting.length > 0) {
      const finished = await this.#finishedJobs(needAccounting, signal);
      for (const id of needAccounting) {
        const done = finished.get(id);
        const entry = queued.get(id);
        if (done) statuses.set(id, mapSlurmState(done.state, done.reason, done.exit));
        else if (entry) statuses.set(id, mapSlurmState(entry.state, entry.reason, null));
        else statuses.set(id, UNKNOWN_STATUS);
      }
    }
    return statuses;
  }

  /** State, reason and exit code of ended jobs: sacct, or scontrol when accounting is off. */
  async #finishedJobs(ids: readonly string[], signal: AbortSignal): Promise<Map<string, FinishedJob>> {
    if (this.#options.accounting) {
      const acct = await this.#runner.run(
        ['sacct', '-X', '-P', '-n', '-j', ids.join(','), '-o', 'JobID,State,ExitCode,Reason'],
        this.#timed(signal),
      );
      if (acct.exitCode === 0) return parseSacct(acct.stdout, this.endpoint);
      if (!/accounting storage is disabled/i.test(acct.stderr))
        throw commandError(this.endpoint, 'sacct', acct.stderr, acct.exitCode);
    }
    const finished = new Map<string, FinishedJob>();
    for (const id of ids) {
      const show = await this.#runner.run(['scontrol', 'show', 'job', '-o', id], this.#timed(signal));
      if (show.exitCode !== 0) continue; // purged: unknown
      const job = parseScontrolJob(show.stdout);
      if (job) finished.set(id, job);
    }
    return finished;
  }

  async cancel(refs: readonly SubmittedPilot[], signal: AbortSignal): Promise<void> {
    if (refs.length === 0) return;
    // scancel says nothing (and exits 0) for unknown or finished jobs: its exit code proves nothing.
    const result = await this.#runner.run(['scancel', ...refs.map((ref) => ref.ref)], this.#timed(signal));
    if (result.exitCode !== 0) throw commandError(this.endpoint, 'scancel', result.stderr, result.exitCode);
  }

  async fetchOutput(pilot: SubmittedPilot, signal: AbortSignal): Promise<FetchedOutput | null> {
    const dir = this.#options.outputDir;
    return readOutputFiles(
      this.#runner,
      { stdout: `${dir}/${pilot.stamp}.out`, stderr: `${dir}/${pilot.stamp}.err` },
      this.#timed(signal),
    );
  }

  refineFinalStatus(status: BackendStatus, output: FetchedOutput | null): BackendStatus {
    return refineSlurmFromOutput(status, output);
  }

  async clean(pilot: SubmittedPilot, signal: AbortSignal): Promise<void> {
    const dir = this.#options.outputDir;
    await this.#runner.run(['rm', '-f', `${dir}/${pilot.stamp}.out`, `${dir}/${pilot.stamp}.err`], this.#timed(signal));
  }

  async close(): Promise<void> {
    await this.#runner.close();
  }

  #timed(signal: AbortSignal): { timeoutMs: number; signal: AbortSignal } {
    return { timeoutMs: this.#options.commandTimeoutMs, signal };
  }
}

interface FinishedJob {
  state: string;
  reason: string;
  exit: { status: number; signal: number } | null;
}

const FINAL_STATES = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'OUT_OF_MEMORY',
  'NODE_FAIL',
  'BOOT_FAIL',
  'PREEMPTED',
  'DEADLINE',
  'REVOKED',
]);
const WAITING_STATES = new Set([
  'PENDING',
  'CONFIGURING',
  'REQUEUED',
  'REQUEUE_HOLD',
  'REQUEUE_FED',
  'RESV_DEL_HOLD',
  'SUSPENDED',
  'STOPPED',
  'SPECIAL_EXIT',
]);
const RUNNING_STATES = new Set(['RUNNING', 'COMPLETING', 'STAGE_OUT', 'SIGNALING', 'RESIZING']);

function parseExit(text: string | undefined): { status: number; signal: number } | null {
  const match = /^(\d+):(\d+)$/.exec(text?.trim() ?? '');
  return match ? { status: Number(match[1]), signal: Number(match[2]) } : null;
}

/** `JobID|State|ExitCode|Reason` lines of `sacct -X -P -n`; `CANCELLED by 0` becomes CANCELLED. */
export function parseSacct(text: string, where: string): Map<string, FinishedJob> {
  const jobs = new Map<string, FinishedJob>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const [id, state, exit, reason] = line.trim().split('|');
    const base = /^([A-Z_]+)/.exec(state ?? '')?.[1];
    if (!id || !/^\d+$/.test(id) || !base)
      throw new PilothouseError('CE_BAD_ANSWER', `${where}: unexpected sacct line: ${line.slice(0, 200)}`);
    jobs.set(id, {
      state: base,
      reason: (state ?? '').slice(base.length).trim() || (reason ?? ''),
      exit: parseExit(exit),
    });
  }
  return jobs;
}

/** One `scontrol show job -o` line: `Key=Value` pairs. */
export function parseScontrolJob(text: string): FinishedJob | null {
  const field = (name: string): string | undefined => new RegExp(`(?:^|\\s)${name}=(\\S*)`).exec(text)?.[1];
  const state = field('JobState');
  if (!state) return null;
  return { state, reason: field('Reason') ?? '', exit: parseExit(field('ExitCode')) };
}

/** A SLURM state (with its reason and, once ended, its exit code) as a pilot status. */
export function mapSlurmState(
  state: string,
  reason: string,
  exit: { status: number; signal: number } | null,
): BackendStatus {
  const why = reason && reason !== 'None' ? reason : '';
  const exitCode = exit === null ? null : exit.signal > 0 ? 128 + exit.signal : exit.status;
  const status = (s: BackendStatus['status'], text: string): BackendStatus => ({
    status: s,
    native: state,
    reason: text,
    exitCode,
  });
  if (WAITING_STATES.has(state))
    return status('Waiting', why ? `${state.toLowerCase()} (${why})` : state.toLowerCase());
  if (RUNNING_STATES.has(state)) return status('Running', state.toLowerCase());
  switch (state) {
    case 'COMPLETED':
      return status(exitCode === null || exitCode === 0 ? 'Done' : 'Failed', exitReason(exitCode ?? 0));
    case 'FAILED':
      return status('Failed', exitCode === null ? `failed${why ? ` (${why})` : ''}` : exitReason(exitCode));
    case 'TIMEOUT':
      return status('Failed', 'the batch system killed the pilot at its wall-time limit');
    case 'OUT_OF_MEMORY':
      return status('Failed', 'the batch system killed the pilot for exceeding its memory');
    case 'NODE_FAIL':
      return status('Failed', 'the node running the pilot failed');
    case 'BOOT_FAIL':
      return status('Failed', 'the node for the pilot failed to boot');
    case 'DEADLINE':
      return status('Failed', 'the job reached its deadline');
    case 'PREEMPTED':
      return status('Aborted', 'preempted by the batch system');
    case 'CANCELLED':
      return status('Aborted', `cancelled${why ? ` (${why})` : ''}`);
    case 'REVOKED':
      return status('Aborted', 'revoked (federation)');
    default:
      return { ...UNKNOWN_STATUS, native: state, reason: `unrecognised SLURM state ${state}` };
  }
}

/** What slurmstepd wrote into the job's output sharpens a bare FAILED (memory kill without cgroups). */
export function refineSlurmFromOutput(status: BackendStatus, output: FetchedOutput | null): BackendStatus {
  if (!output || status.status !== 'Failed') return status;
  const text = `${output.stderr}\n${output.stdout}`;
  if (/Exceeded job memory limit|oom-kill event|OUT_OF_MEMORY/i.test(text)) {
    return { ...status, reason: 'the batch system killed the pilot for exceeding its memory' };
  }
  if (/DUE TO TIME LIMIT/.test(text))
    return { ...status, reason: 'the batch system killed the pilot at its wall-time limit' };
  return status;
}

function classifySbatchError(text: string): 'CE_REFUSED' | 'CE_UNREACHABLE' | 'CE_BAD_ANSWER' {
  if (
    /Unable to contact slurm controller|Socket timed out|Connection refused|Could not establish a configuration source/i.test(
      text,
    )
  ) {
    return 'CE_UNREACHABLE';
  }
  if (/invalid|not available|can not be satisfied|not allowed|denied|exceed|limit/i.test(text)) return 'CE_REFUSED';
  return 'CE_BAD_ANSWER';
}

function commandError(where: string, command: string, stderr: string, exitCode: number): PilothouseError {
  const detail = lastLine(stderr) || `exit code ${exitCode}`;
  const code = /Unable to contact slurm controller|Socket timed out|Connection refused/i.test(detail)
    ? 'CE_UNREACHABLE'
    : 'CE_BAD_ANSWER';
  return new PilothouseError(code, `${where}: ${command}: ${detail}`);
}
