/** Builds the backend of a configured CE (its transport included: here or over SSH). */
import type { CeConfig, SshTargetConfig } from '../config/load.ts';
import { LocalRunner, type CommandRunner } from '../transport/command-runner.ts';
import { SshRunner } from '../transport/ssh-runner.ts';
import { ArcBackend } from './arc.ts';
import type { CeBackend } from './backend.ts';
import { HostProcessBackend } from './host-process.ts';
import { HtcondorBackend } from './htcondor.ts';
import { SlurmBackend } from './slurm.ts';

export interface BackendTimings {
  /** Any one call to the CE. */
  ceTimeoutMs: number;
  /** A cancelled pilot drains for this long before SIGKILL (local and SSH backends). */
  cancelGraceSec: number;
}

export const DEFAULT_CANCEL_GRACE_SEC = 30;

function runnerFor(target: SshTargetConfig | null, timeoutMs: number): CommandRunner {
  if (target === null) return new LocalRunner();
  return new SshRunner({ ...target, connectTimeoutSec: Math.max(1, Math.min(30, Math.floor(timeoutMs / 1000))) });
}

export function createBackend(ce: CeConfig, timings: BackendTimings): CeBackend {
  const b = ce.backend;
  switch (b.type) {
    case 'local':
      return new HostProcessBackend({
        type: 'local',
        runner: new LocalRunner(),
        workDir: b.workDir,
        commandTimeoutMs: timings.ceTimeoutMs,
        cancelGraceSec: timings.cancelGraceSec,
      });
    case 'ssh':
      return new HostProcessBackend({
        type: 'ssh',
        runner: runnerFor(b.target, timings.ceTimeoutMs),
        workDir: b.workDir,
        commandTimeoutMs: timings.ceTimeoutMs,
        cancelGraceSec: timings.cancelGraceSec,
      });
    case 'slurm':
      return new SlurmBackend({
        runner: runnerFor(b.login, timings.ceTimeoutMs),
        outputDir: b.outputDir,
        account: b.account,
        submitOptions: b.submitOptions,
        accounting: b.accounting,
        commandTimeoutMs: timings.ceTimeoutMs,
      });
    case 'htcondor':
      return new HtcondorBackend({
        runner: runnerFor(b.login, timings.ceTimeoutMs),
        ceHost: ce.name,
        pool: b.pool,
        mode: b.mode,
        tokenFile: b.tokenFile,
        workDir: b.workDir,
        extraSubmit: b.extraSubmit,
        commandTimeoutMs: timings.ceTimeoutMs,
      });
    case 'arc':
      return new ArcBackend({
        url: b.url,
        caFile: b.caFile,
        certFile: b.certFile,
        keyFile: b.keyFile,
        tokenFile: b.tokenFile,
        requestTimeoutMs: timings.ceTimeoutMs,
      });
  }
}
