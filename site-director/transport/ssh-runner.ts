/**
 * Commands on a remote host through the OpenSSH client: the sites' own tool, which reads their
 * known_hosts, keys, agents and jump hosts like every other login. Connections are multiplexed
 * (ControlMaster), so a cycle of many commands to one login node pays the handshake once; the
 * control socket lives in a private directory of this process and dies with it (ControlPersist).
 * BatchMode: never a password prompt; an unknown host key is refused unless known_hosts has it.
 * ssh's own failures (exit 255: no route, refused, host key, authentication) are CE_UNREACHABLE.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runProcess, shellQuote, type CommandResult, type CommandRunner, type RunOptions } from './command-runner.ts';

export interface SshTarget {
  host: string;
  port: number;
  user: string | null;
  /** Private key file; null: ssh's defaults and agent. */
  keyFile: string | null;
  /** known_hosts file; null: the user's own. */
  knownHostsFile: string | null;
  /** More `-o` options, e.g. ProxyJump=bastion. */
  options: readonly string[];
  connectTimeoutSec: number;
}

const SSH_TRANSPORT_FAILURE = 255;

export class SshRunner implements CommandRunner {
  readonly where: string;
  readonly #target: SshTarget;
  readonly #controlDir: string;

  constructor(target: SshTarget) {
    this.#target = target;
    this.where = `ssh://${target.user ? `${target.user}@` : ''}${target.host}:${target.port}`;
    this.#controlDir = mkdtempSync(path.join(os.tmpdir(), 'ph-ssh-'));
  }

  #sshArgs(): string[] {
    const t = this.#target;
    const args = [
      '-p',
      String(t.port),
      '-o',
      'BatchMode=yes',
      '-o',
      `ConnectTimeout=${t.connectTimeoutSec}`,
      '-o',
      'ServerAliveInterval=15',
      '-o',
      'ControlMaster=auto',
      '-o',
      `ControlPath=${path.join(this.#controlDir, '%C')}`,
      '-o',
      'ControlPersist=120',
      '-o',
      'LogLevel=ERROR',
    ];
    if (t.keyFile !== null) args.push('-i', t.keyFile, '-o', 'IdentitiesOnly=yes');
    if (t.knownHostsFile !== null)
      args.push('-o', `UserKnownHostsFile=${t.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes');
    for (const option of t.options) args.push('-o', option);
    args.push(t.user ? `${t.user}@${t.host}` : t.host);
    return args;
  }

  async run(argv: readonly string[], options: RunOptions): Promise<CommandResult> {
    // The remote side hands the command to the user's shell: every word is quoted, environment included.
    const env = Object.entries(options.env ?? {}).map(([name, value]) => `${name}=${shellQuote(value)}`);
    const remote = [...env, ...argv.map(shellQuote)].join(' ');
    const { env: _local, ...rest } = options;
    return runProcess('ssh', [...this.#sshArgs(), '--', remote], rest, this.where, SSH_TRANSPORT_FAILURE);
  }

  async sh(script: string, args: readonly string[], options: Omit<RunOptions, 'stdin'>): Promise<CommandResult> {
    return this.run(['/bin/sh', '-s', '--', ...args], { ...options, stdin: script });
  }

  async close(): Promise<void> {
    // Ends the master connection, then removes its socket directory.
    await runProcess('ssh', ['-O', 'exit', ...this.#sshArgs()], { timeoutMs: 5000 }, this.where).catch(() => undefined);
    rmSync(this.#controlDir, { recursive: true, force: true });
  }
}
