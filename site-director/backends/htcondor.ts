/**
 * HTCondor-CE: pilots go to the CE's schedd with `condor_submit -terse` and a generated submit
 * description (cores, memory, GPUs and wall time passed through), are followed with `condor_q` and
 * then `condor_history` (JSON output), removed with `condor_rm`, and their output is brought back with
 * `condor_transfer_data` (remote schedd) before it is read. Two ways to reach a CE, as sites run them:
 *  - `remote-schedd`: `-pool CE:9619 -remote CE -spool` straight to the CE's own schedd;
 *  - `local-schedd`: a schedd on the submit host forwards grid-universe jobs (`grid_resource = condor`).
 * Authentication is by token (SciTokens/IDTOKENS file given to the condor tools in their environment).
 *
 * One cluster per submission: the wrapper (which holds the pilot's secret) is a per-pilot input file,
 * and the executable is /bin/sh, so every proc of the cluster shares one executable.
 * Formats (HTCondor 25): `-terse` prints `C.P0 - C.Pn`; `condor_q -json` prints nothing at all when no
 * job matches, `condor_history -json` prints `[\n]`; ads are sorted attributes separated by `\n,\n`.
 */
import { z } from 'zod';
import { PilothouseError } from '../../shared/errors.ts';
import { lastLine, shellQuote, type CommandRunner, type CommandResult } from '../transport/command-runner.ts';
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

export interface HtcondorOptions {
  runner: CommandRunner;
  /** The CE, e.g. ce.example.org (its schedd name) and its collector, ce.example.org:9619. */
  ceHost: string;
  pool: string;
  mode: 'remote-schedd' | 'local-schedd';
  /** Token file for the condor tools (SciTokens / IDTOKENS); null: the tools' own configuration. */
  tokenFile: string | null;
  /** On the submit host: submit files, wrappers, outputs and the job log. */
  workDir: string;
  /** More submit-description lines (`+xcount = 8`, `requirements = ...`). */
  extraSubmit: readonly string[];
  commandTimeoutMs: number;
}

const ATTRIBUTES = [
  'ClusterId',
  'ProcId',
  'JobStatus',
  'HoldReason',
  'HoldReasonCode',
  'HoldReasonSubCode',
  'ExitCode',
  'ExitBySignal',
  'ExitSignal',
  'RemoveReason',
].join(',');

const adSchema = z.looseObject({
  ClusterId: z.int(),
  ProcId: z.int(),
  JobStatus: z.int(),
  HoldReason: z.string().optional(),
  HoldReasonCode: z.int().optional(),
  HoldReasonSubCode: z.int().optional(),
  ExitCode: z.int().optional(),
  ExitBySignal: z.boolean().optional(),
  ExitSignal: z.int().optional(),
  RemoveReason: z.string().optional(),
});
type JobAd = z.infer<typeof adSchema>;

/** Hold code 16: the job's input is being spooled to the CE, it has not failed. */
const HOLD_SPOOLING = 16;

export class HtcondorBackend implements CeBackend {
  readonly type = 'htcondor' as const;
  readonly capabilities = { maxPilotsPerSubmit: 100, fetchesOutput: true, local: false };
  readonly endpoint: string;
  readonly #runner: CommandRunner;
  readonly #options: HtcondorOptions;

  constructor(options: HtcondorOptions) {
    this.#runner = options.runner;
    this.#options = options;
    this.endpoint = `htcondor://${options.pool}(${options.mode}) via ${options.runner.where}`;
  }

  /** -pool/-name for the query and removal tools when the CE's schedd is addressed directly. */
  #scheddArgs(): string[] {
    return this.#options.mode === 'remote-schedd' ? ['-pool', this.#options.pool, '-name', this.#options.ceHost] : [];
  }

  #env(): Record<string, string> {
    const token = this.#options.tokenFile;
    return token === null
      ? {}
      : { _CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS: 'SCITOKENS,IDTOKENS', _CONDOR_SCITOKENS_FILE: token };
  }

  submitDescription(request: SubmitRequest, batch: string): string {
    const o = this.#options;
    const r = request.resources;
    const lines = [
      `# Pilothouse pilots (${request.pilots.length}), batch ${batch}`,
      o.mode === 'local-schedd' ? 'universe = grid' : 'universe = vanilla',
      ...(o.mode === 'local-schedd' ? [`grid_resource = condor ${o.ceHost} ${o.pool}`] : []),
      'executable = /bin/sh',
      'transfer_executable = false',
      'arguments = $(stamp).sh',
      `transfer_input_files = ${o.workDir}/$(stamp).sh`,
      'should_transfer_files = YES',
      'when_to_transfer_output = ON_EXIT_OR_EVICT',
      `output = ${o.workDir}/$(stamp).out`,
      `error = ${o.workDir}/$(stamp).err`,
      `log = ${o.workDir}/pilots.log`,
      `request_cpus = ${r.cores}`,
      ...(r.memoryMB > 0 ? [`request_memory = ${r.memoryMB}`] : []),
      ...(r.gpus > 0 ? [`request_gpus = ${r.gpus}`] : []),
      ...(r.wallTimeSec !== null ? [`+maxWallTime = ${Math.max(1, Math.ceil(r.wallTimeSec / 60))}`] : []),
      ...(r.wholeNode ? ['+WholeNodes = true'] : []),
      ...(request.queue ? [`+queue = "${request.queue}"`] : []),
      'environment = "PILOTHOUSE_PILOT_STAMP=$(stamp)"',
      '+PilothouseStamp = "$(stamp)"',
      'kill_sig = SIGTERM',
      ...o.extraSubmit,
      'queue stamp in (',
      ...request.pilots.map((pilot) => pilot.stamp),
      ')',
    ];
    return `${lines.join('\n')}\n`;
  }

  async submit(request: SubmitRequest): Promise<SubmitOutcome> {
    const batch = request.pilots[0]?.stamp ?? 'empty';
    const o = this.#options;
    const boundary = `PH_FILE_${batch}_END`;
    const files = [
      ...request.pilots.map((pilot) => ({ name: `${pilot.stamp}.sh`, text: pilot.wrapper })),
      { name: `${batch}.sub`, text: this.submitDescription(request, batch) },
    ];
    const submitArgs = [
      'condor_submit',
      '-terse',
      ...(o.mode === 'remote-schedd' ? ['-pool', o.pool, '-remote', o.ceHost, '-spool'] : []),
      `${batch}.sub`,
    ];
    // The files go over first (0600: the wrappers hold secrets), then one condor_submit for the cluster.
    const script = `
dir=$1
mkdir -p "$dir" && chmod 700 "$dir" && cd "$dir" || { echo "cannot use $dir" >&2; exit 97; }
${files.map((file) => `cat >${shellQuote(file.name)} <<'${boundary}'\n${file.text}\n${boundary}\n`).join('')}
${submitArgs.map(shellQuote).join(' ')}`;
    let result: CommandResult;
    try {
      result = await this.#runner.sh(script, [o.workDir], {
        timeoutMs: o.commandTimeoutMs,
        signal: request.signal,
        env: this.#env(),
      });
    } catch (error) {
      return { submitted: [], error: error as Error };
    }
    if (result.exitCode !== 0) {
      const detail = lastLine(result.stderr) || `exit code ${result.exitCode}`;
      const code =
        result.exitCode === 97
          ? 'CE_REFUSED'
          : /Failed to (connect|fetch)|Connection refused|timed out|AUTHENTICATE/i.test(result.stderr)
            ? 'CE_UNREACHABLE'
            : 'CE_REFUSED';
      return { submitted: [], error: new PilothouseError(code, `${this.endpoint}: condor_submit: ${detail}`) };
    }
    const match = /^(\d+)\.(\d+) - (\d+)\.(\d+)$/m.exec(result.stdout);
    const count = match ? Number(match[4]) - Number(match[2]) + 1 : 0;
    if (!match || match[1] !== match[3] || count !== request.pilots.length) {
      return {
        submitted: [],
        error: new PilothouseError(
          'CE_BAD_ANSWER',
          `${this.endpoint}: condor_submit -terse said ${JSON.stringify(result.stdout.slice(0, 200))}`,
        ),
      };
    }
    const cluster = match[1] as string;
    const first = Number(match[2]);
    return {
      submitted: request.pilots.map((pilot, index) => ({ stamp: pilot.stamp, ref: `${cluster}.${first + index}` })),
      error: null,
    };
  }

  async status(refs: readonly SubmittedPilot[], signal: AbortSignal): Promise<Map<string, BackendStatus>> {
    const statuses = new Map<string, BackendStatus>();
    if (refs.length === 0) return statuses;
    const ids = refs.map((ref) => ref.ref);
    for (const ad of await this.#query('condor_q', ids, signal))
      statuses.set(`${ad.ClusterId}.${ad.ProcId}`, mapJobAd(ad));
    const gone = ids.filter((id) => !statuses.has(id));
    if (gone.length > 0) {
      for (const ad of await this.#query('condor_history', gone, signal))
        statuses.set(`${ad.ClusterId}.${ad.ProcId}`, mapJobAd(ad));
    }
    for (const id of ids) if (!statuses.has(id)) statuses.set(id, UNKNOWN_STATUS);
    return statuses;
  }

  async #query(tool: 'condor_q' | 'condor_history', ids: readonly string[], signal: AbortSignal): Promise<JobAd[]> {
    const result = await this.#runner.run([tool, ...this.#scheddArgs(), ...ids, '-attributes', ATTRIBUTES, '-json'], {
      timeoutMs: this.#options.commandTimeoutMs,
      signal,
      env: this.#env(),
    });
    if (result.exitCode !== 0) {
      const detail = lastLine(result.stderr) || `exit code ${result.exitCode}`;
      throw new PilothouseError(
        /Failed to fetch ads|Failed to connect|Connection refused/i.test(result.stderr)
          ? 'CE_UNREACHABLE'
          : 'CE_BAD_ANSWER',
        `${this.endpoint}: ${tool}: ${detail}`,
      );
    }
    return parseJobAds(result.stdout, `${this.endpoint}: ${tool}`);
  }

  async cancel(refs: readonly SubmittedPilot[], signal: AbortSignal): Promise<void> {
    if (refs.length === 0) return;
    const result = await this.#runner.run(['condor_rm', ...this.#scheddArgs(), ...refs.map((ref) => ref.ref)], {
      timeoutMs: this.#options.commandTimeoutMs,
      signal,
      env: this.#env(),
    });
    // Jobs already gone are what a cancel wants: only other complaints are errors.
    const complaints = result.stderr
      .split('\n')
      .filter(
        (line) =>
          line.trim() !== '' &&
          !/not found|already marked for removal|no jobs in the queue|Couldn't find\/remove/i.test(line),
      );
    if (result.exitCode !== 0 && complaints.length > 0) {
      throw new PilothouseError(
        'CE_BAD_ANSWER',
        `${this.endpoint}: condor_rm: ${complaints[complaints.length - 1]?.trim()}`,
      );
    }
  }

  async fetchOutput(pilot: SubmittedPilot, signal: AbortSignal): Promise<FetchedOutput | null> {
    const options = { timeoutMs: this.#options.commandTimeoutMs, signal };
    if (this.#options.mode === 'remote-schedd') {
      // A spooled job's output stays on the CE until it is transferred back.
      await this.#runner.run(['condor_transfer_data', ...this.#scheddArgs(), pilot.ref], {
        ...options,
        env: this.#env(),
      });
    }
    const dir = this.#options.workDir;
    return readOutputFiles(
      this.#runner,
      { stdout: `${dir}/${pilot.stamp}.out`, stderr: `${dir}/${pilot.stamp}.err` },
      options,
    );
  }

  refineFinalStatus(status: BackendStatus): BackendStatus {
    return status;
  }

  async clean(pilot: SubmittedPilot, signal: AbortSignal): Promise<void> {
    const dir = this.#options.workDir;
    // A batch's submit description is named after its first pilot.
    const files = ['sh', 'out', 'err', 'sub'].map((ext) => `${dir}/${pilot.stamp}.${ext}`);
    await this.#runner.run(['rm', '-f', ...files], { timeoutMs: this.#options.commandTimeoutMs, signal });
  }

  async close(): Promise<void> {
    await this.#runner.close();
  }
}

/** condor_q/condor_history `-json`: an array of ads, or nothing at all for no match. */
export function parseJobAds(text: string, where: string): JobAd[] {
  if (text.trim() === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new PilothouseError('CE_BAD_ANSWER', `${where}: not JSON: ${text.slice(0, 120)}`);
  }
  const ads = z.array(adSchema).safeParse(parsed);
  if (!ads.success)
    throw new PilothouseError('CE_BAD_ANSWER', `${where}: unexpected job ads: ${ads.error.issues[0]?.message ?? ''}`);
  return ads.data;
}

export function mapJobAd(ad: JobAd): BackendStatus {
  const native = String(ad.JobStatus);
  switch (ad.JobStatus) {
    case 1:
      return { status: 'Waiting', native: '1 (Idle)', reason: 'idle in the CE queue', exitCode: null };
    case 2:
      return { status: 'Running', native: '2 (Running)', reason: 'running', exitCode: null };
    case 3:
      return {
        status: 'Aborted',
        native: '3 (Removed)',
        reason: `removed${ad.RemoveReason ? `: ${ad.RemoveReason}` : ''}`,
        exitCode: null,
      };
    case 4: {
      if (ad.ExitBySignal) {
        const exitCode = 128 + (ad.ExitSignal ?? 0);
        return { status: 'Failed', native: '4 (Completed)', reason: exitReason(exitCode), exitCode };
      }
      const exitCode = ad.ExitCode ?? null;
      return {
        status: exitCode === 0 ? 'Done' : 'Failed',
        native: '4 (Completed)',
        reason: exitReason(exitCode ?? 1),
        exitCode,
      };
    }
    case 5:
      if (ad.HoldReasonCode === HOLD_SPOOLING)
        return { status: 'Waiting', native: '5 (Held)', reason: 'input being spooled to the CE', exitCode: null };
      return {
        status: 'Aborted',
        native: '5 (Held)',
        reason: `held (code ${ad.HoldReasonCode ?? '?'}/${ad.HoldReasonSubCode ?? '?'}): ${ad.HoldReason ?? 'no reason given'}`,
        exitCode: null,
        cancelToEnd: true,
      };
    case 6:
      return {
        status: 'Running',
        native: '6 (Transferring output)',
        reason: 'transferring its output',
        exitCode: null,
      };
    case 7:
      return { status: 'Running', native: '7 (Suspended)', reason: 'suspended by the CE', exitCode: null };
    default:
      return { ...UNKNOWN_STATUS, native, reason: `unrecognised JobStatus ${native}` };
  }
}
