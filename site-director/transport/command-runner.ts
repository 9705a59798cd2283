/**
 * How a backend runs batch-system commands: here (`LocalRunner`) or on a login node over SSH
 * (`SshRunner`). A backend never knows which: the same SLURM or HTCondor code drives both. Every call
 * has a timeout and an abort signal; a command that does not answer in time is killed and reported as
 * CE_TIMEOUT, a command that cannot be started as CE_UNREACHABLE. A non-zero exit is not an error
 * here: the backend reads stdout, stderr and the exit code and decides what they mean.
 */
import { execa } from 'execa';
import { PilothouseError } from '../../shared/errors.ts';

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  stdin?: string;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Extra environment for the command (credentials paths, batch-system settings). */
  env?: Record<string, string>;
}

export interface CommandRunner {
  /** Where commands run, for logs and errors: `local` or `ssh://user@host:port`. */
  readonly where: string;
  /** Runs argv[0] with the other arguments (no shell on this side). */
  run(argv: readonly string[], options: RunOptions): Promise<CommandResult>;
  /** Runs a POSIX sh script (its text on stdin of `sh -s`) with positional arguments. */
  sh(script: string, args: readonly string[], options: Omit<RunOptions, 'stdin'>): Promise<CommandResult>;
  close(): Promise<void>;
}

/** Quotes one word for a POSIX shell. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

export class LocalRunner implements CommandRunner {
  readonly where = 'local';

  async run(argv: readonly string[], options: RunOptions): Promise<CommandResult> {
    const [file, ...args] = argv;
    if (file === undefined) throw new Error('empty command');
    return runProcess(file, args, options, this.where);
  }

  async sh(script: string, args: readonly string[], options: Omit<RunOptions, 'stdin'>): Promise<CommandResult> {
    return runProcess('/bin/sh', ['-s', '--', ...args], { ...options, stdin: script }, this.where);
  }

  async close(): Promise<void> {}
}

/**
 * Runs one process with the runner's rules (timeout → CE_TIMEOUT, not startable → CE_UNREACHABLE).
 * `unreachableExitCode` names an exit code that means the transport failed (ssh exits 255).
 */
export async function runProcess(
  file: string,
  args: readonly string[],
  options: RunOptions,
  where: string,
  unreachableExitCode?: number,
): Promise<CommandResult> {
  const result = await execa(file, args, {
    input: options.stdin ?? '',
    timeout: options.timeoutMs,
    ...(options.signal && { cancelSignal: options.signal }),
    env: options.env ?? {},
    extendEnv: true,
    reject: false,
    stripFinalNewline: false,
    maxBuffer: 64 * 1024 * 1024,
    killSignal: 'SIGKILL',
  });
  const command = [file, ...args].join(' ').slice(0, 200);
  if (result.timedOut) {
    throw new PilothouseError('CE_TIMEOUT', `${where}: ${command} did not answer within ${options.timeoutMs} ms`, {
      where,
    });
  }
  if (result.isCanceled) {
    // The caller's deadline (an AbortSignal.timeout) is a timeout too; a stop is a cancellation.
    const reason = options.signal?.reason as { name?: string } | undefined;
    const why =
      reason?.name === 'TimeoutError'
        ? `did not answer within its deadline (${options.timeoutMs} ms at most)`
        : 'was cancelled';
    throw new PilothouseError('CE_TIMEOUT', `${where}: ${command} ${why}`, { where });
  }
  if (result.failed && result.exitCode === undefined) {
    throw new PilothouseError(
      'CE_UNREACHABLE',
      `${where}: cannot run ${file}: ${result.cause instanceof Error ? result.cause.message : result.shortMessage}`,
      { where },
    );
  }
  const exitCode = result.exitCode ?? 1;
  const stdout = String(result.stdout ?? '');
  const stderr = String(result.stderr ?? '');
  if (unreachableExitCode !== undefined && exitCode === unreachableExitCode) {
    throw new PilothouseError('CE_UNREACHABLE', `${where}: ${lastLine(stderr) || `exit code ${exitCode}`}`, { where });
  }
  return { exitCode, stdout, stderr };
}

export function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return (lines[lines.length - 1] ?? '').trim().slice(0, 500);
}
