/**
 * Pilots as background processes on a host: this machine (`local`, through a LocalRunner) or a remote
 * host reached over SSH (`ssh`). Each pilot gets a directory `<workDir>/<stamp>/` holding its wrapper,
 * stdout, stderr, pid and, once it ends, its exit code; the pilot runs in its own session (setsid), so
 * a cancel reaches its whole process tree, and it outlives the director (a restarted director finds
 * it again by its directory). Every operation on many pilots is ONE shell script run on the host.
 *
 * Statuses: an exit code file → Done (0) or Failed (with the wrapper's reason); a live pid → Running;
 * cancelled by the director → Aborted; a directory without a live process or an exit code (host
 * rebooted, process killed from outside) → Unknown, until the director calls it Lost.
 */
import { randomBytes } from 'node:crypto';
import { PilothouseError } from '../../shared/errors.ts';
import type { BackendType } from '../../shared/protocol/site-director.ts';
import { lastLine, type CommandRunner } from '../transport/command-runner.ts';
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

export interface HostProcessOptions {
  type: Extract<BackendType, 'local' | 'ssh'>;
  runner: CommandRunner;
  /** Directory for the pilots' directories (relative paths start at the remote user's home). */
  workDir: string;
  commandTimeoutMs: number;
  /** After a cancel's SIGTERM (the pilot drains), SIGKILL follows this much later. */
  cancelGraceSec: number;
}

const STATE_LINE = /^(\S+) (exited (-?\d+)|running|cancelled|vanished|unknown)$/;

// Shell helpers every script starts with: is a pid alive (a zombie is not), sizes and tails of files.
const PRELUDE = `
alive() { kill -0 "$1" 2>/dev/null || return 1
  [ -r "/proc/$1/stat" ] || return 0
  [ "$(sed -e 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]; }
`;

export class HostProcessBackend implements CeBackend {
  readonly type: Extract<BackendType, 'local' | 'ssh'>;
  readonly capabilities;
  readonly endpoint: string;
  readonly #runner: CommandRunner;
  readonly #options: HostProcessOptions;

  constructor(options: HostProcessOptions) {
    this.type = options.type;
    this.#runner = options.runner;
    this.#options = options;
    this.endpoint = `${options.runner.where}:${options.workDir}`;
    this.capabilities = { maxPilotsPerSubmit: 50, fetchesOutput: true, local: options.type === 'local' };
  }

  async submit(request: SubmitRequest): Promise<SubmitOutcome> {
    const boundary = `PH_WRAPPER_${randomBytes(12).toString('hex')}`;
    const blocks = request.pilots.map((pilot) => {
      if (pilot.wrapper.includes(boundary)) throw new Error('wrapper collides with the heredoc boundary');
      return `start ${pilot.stamp} <<'${boundary}'\n${pilot.wrapper}\n${boundary}\n`;
    });
    // Each pilot: its directory, its wrapper (0700), then a session of its own that records the exit code.
    const script = `${PRELUDE}
set -u
base=$1
mkdir -p "$base" && chmod 700 "$base" || { echo "cannot create $base" >&2; exit 3; }
start() {
  d="$base/$1"
  mkdir "$d" && chmod 700 "$d" || { echo "cannot create $d" >&2; cat >/dev/null; return 0; }
  cat >"$d/wrapper.sh" && chmod 700 "$d/wrapper.sh"
  launcher='PILOTHOUSE_PILOT_STAMP=$0 sh ./wrapper.sh >stdout 2>stderr </dev/null; echo $? >exitcode.tmp; mv exitcode.tmp exitcode'
  # A plain background command: $! is the process that setsid turns into the session leader.
  (
    cd "$d" || exit 1
    if command -v setsid >/dev/null 2>&1; then
      setsid sh -c "$launcher" "$1" >/dev/null 2>&1 </dev/null &
    else
      nohup sh -c "$launcher" "$1" >/dev/null 2>&1 </dev/null &
    fi
    echo $! >pid
  )
  echo "started $1 $(cat "$d/pid")"
}
${blocks.join('')}`;
    let result;
    try {
      result = await this.#runner.sh(script, [this.#options.workDir], this.#timed(request.signal));
    } catch (error) {
      return { submitted: [], error: error as Error };
    }
    const started = new Set(
      result.stdout
        .split('\n')
        .map((line) => /^started (\S+) \d+$/.exec(line)?.[1])
        .filter((stamp) => stamp !== undefined),
    );
    const submitted = request.pilots
      .filter((pilot) => started.has(pilot.stamp))
      .map((pilot) => ({ stamp: pilot.stamp, ref: pilot.stamp }));
    const error =
      submitted.length === request.pilots.length
        ? null
        : new PilothouseError(
            result.exitCode === 3 ? 'CE_REFUSED' : 'CE_BAD_ANSWER',
            `${this.#runner.where}: ${request.pilots.length - submitted.length} pilot(s) not started: ${
              lastLine(result.stderr) || `exit code ${result.exitCode}`
            }`,
          );
    return { submitted, error };
  }

  async status(refs: readonly SubmittedPilot[], signal: AbortSignal): Promise<Map<string, BackendStatus>> {
    const statuses = new Map<string, BackendStatus>();
    if (refs.length === 0) return statuses;
    const script = `${PRELUDE}
base=$1; shift
for s in "$@"; do
  d="$base/$s"
  if [ -f "$d/exitcode" ]; then echo "$s exited $(cat "$d/exitcode")"
  elif [ -f "$d/pid" ] && alive "$(cat "$d/pid")"; then echo "$s running"
  elif [ -f "$d/cancelled" ]; then echo "$s cancelled"
  elif [ -d "$d" ]; then echo "$s vanished"
  else echo "$s unknown"; fi
done`;
    const result = await this.#runner.sh(
      script,
      [this.#options.workDir, ...refs.map((ref) => ref.ref)],
      this.#timed(signal),
    );
    if (result.exitCode !== 0) {
      throw new PilothouseError(
        'CE_BAD_ANSWER',
        `${this.#runner.where}: status script failed: ${lastLine(result.stderr)}`,
      );
    }
    for (const line of result.stdout.split('\n')) {
      if (line.trim() === '') continue;
      const match = STATE_LINE.exec(line.trim());
      if (!match)
        throw new PilothouseError(
          'CE_BAD_ANSWER',
          `${this.#runner.where}: unexpected status line: ${line.slice(0, 200)}`,
        );
      statuses.set(match[1] as string, this.#mapState(match[2] as string, match[3]));
    }
    for (const ref of refs) if (!statuses.has(ref.ref)) statuses.set(ref.ref, UNKNOWN_STATUS);
    return statuses;
  }

  #mapState(state: string, exitText: string | undefined): BackendStatus {
    if (exitText !== undefined) {
      const exitCode = Number(exitText);
      return {
        status: exitCode === 0 ? 'Done' : 'Failed',
        native: `exited ${exitCode}`,
        reason: exitReason(exitCode),
        exitCode,
      };
    }
    switch (state) {
      case 'running':
        return { status: 'Running', native: 'running', reason: 'the pilot process runs', exitCode: null };
      case 'cancelled':
        return { status: 'Aborted', native: 'cancelled', reason: 'cancelled by the site director', exitCode: null };
      case 'vanished':
        return {
          status: 'Unknown',
          native: 'vanished',
          reason: 'the pilot process is gone without an exit code (killed from outside, or the host rebooted)',
          exitCode: null,
        };
      default:
        return UNKNOWN_STATUS;
    }
  }

  async cancel(refs: readonly SubmittedPilot[], signal: AbortSignal): Promise<void> {
    if (refs.length === 0) return;
    // SIGTERM drains the pilot (its jobs get its drain grace); SIGKILL to the whole session follows.
    const script = `${PRELUDE}
base=$1; grace=$2; shift 2
for s in "$@"; do
  d="$base/$s"
  [ -f "$d/pid" ] || continue
  p=$(cat "$d/pid")
  [ -f "$d/exitcode" ] && continue
  : >"$d/cancelled"
  kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null
  # A watcher that ends with the pilot, or kills its whole session when the grace is over.
  (i=0; while alive "$p" && [ "$i" -lt "$grace" ]; do sleep 1; i=$((i + 1)); done
   alive "$p" && kill -KILL -- "-$p" 2>/dev/null) >/dev/null 2>&1 </dev/null &
done`;
    await this.#runner.sh(
      script,
      [this.#options.workDir, String(this.#options.cancelGraceSec), ...refs.map((ref) => ref.ref)],
      this.#timed(signal),
    );
  }

  async fetchOutput(pilot: SubmittedPilot, signal: AbortSignal): Promise<FetchedOutput | null> {
    const dir = `${this.#options.workDir}/${pilot.ref}`;
    return readOutputFiles(this.#runner, { stdout: `${dir}/stdout`, stderr: `${dir}/stderr` }, this.#timed(signal));
  }

  refineFinalStatus(status: BackendStatus): BackendStatus {
    return status;
  }

  async clean(pilot: SubmittedPilot, signal: AbortSignal): Promise<void> {
    await this.#runner.sh(
      'd="$1/$2"; [ -f "$d/pid" ] && rm -rf "$d"; exit 0',
      [this.#options.workDir, pilot.ref],
      this.#timed(signal),
    );
  }

  async close(): Promise<void> {
    await this.#runner.close();
  }

  #timed(signal: AbortSignal): { timeoutMs: number; signal: AbortSignal } {
    return { timeoutMs: this.#options.commandTimeoutMs, signal };
  }
}
