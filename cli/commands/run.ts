/**
 * `pilothouse run job.json|job.jdl`: one job tried on this machine with no server, through the same
 * job runner a pilot uses (input sandbox unpacked from local files, wall-time, memory and disk limits,
 * output sandbox selected and packed), printing statuses as they change. The output sandbox ends up
 * unpacked in the directory the command names; its exit code is the payload's.
 */
import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import { parseJobDescription } from '../../shared/job/description.ts';
import { systemClock } from '../../shared/clock.ts';
import { createLogger } from '../../shared/logger.ts';
import { JobRunner, type StatusUpdate } from '../../pilot/job-runner.ts';
import { LocalSandboxTransfer } from '../../pilot/local-sandbox-transfer.ts';
import {
  DEFAULT_APP_STATUS_POLL_MS,
  DEFAULT_KILL_GRACE_MS,
  DEFAULT_MAX_OUTPUT_SANDBOX_BYTES,
  DEFAULT_MAX_UNPACKED_BYTES,
  DEFAULT_MAX_UNPACKED_ENTRIES,
} from '../../pilot/config.ts';
import { packInputFiles } from '../input-sandbox.ts';
import { readJobs } from '../job-files.ts';
import { unpackOutputSandbox } from '../unpack-output.ts';

/** The id a local job runs under (`%j` becomes this; no matcher hands out ids here). */
const LOCAL_JOB_ID = 0;

interface RunOptions {
  dir?: string;
  index: string;
  keepWorkdir: boolean;
  cores: string;
  json: boolean;
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

export function runCommand(): Command {
  return new Command('run')
    .description(
      'run one job on this machine, with no server, through the job runner pilots use; exits with the payload exit code',
    )
    .argument('<file>', 'a job description: JSON (one job) or DIRAC JDL')
    .option('--dir <dir>', 'where the outputs go (default ./pilothouse-run-<date>-<time>)')
    .option('--index <n>', 'which job of a file that describes several (a parametric JDL), counted from 0', '0')
    .option('--keep-workdir', "also keep the job's working directory (in <dir>/.work)", false)
    .option('--cores <n>', 'cores the job is given (PILOTHOUSE_CORES, OMP_NUM_THREADS...)', '1')
    .option('--json', 'print the statuses and the result as JSON lines', false)
    .action(async (file: string, options: RunOptions) => {
      const warn = (message: string) => process.stderr.write(`warning: ${message}\n`);
      const jobs = await readJobs([file], warn);
      const index = Number(options.index);
      const chosen = jobs[index];
      if (!Number.isInteger(index) || index < 0 || chosen === undefined) {
        throw new PilothouseError(
          'CONFIG_INVALID',
          `--index ${options.index}: ${file} describes ${jobs.length} job(s), counted from 0`,
          { field: 'index' },
        );
      }
      const cores = Number(options.cores);
      if (!Number.isInteger(cores) || cores < 1) {
        throw new PilothouseError('CONFIG_INVALID', '--cores must be a positive integer', { field: 'cores' });
      }
      const refs = (chosen.description['inputSandbox'] as unknown[] | undefined) ?? [];
      if (refs.length > 0) {
        throw new PilothouseError(
          'VALIDATION_FAILED',
          `${file} names uploaded sandboxes (${refs.join(', ')}); a local run takes local input files only`,
          { field: 'inputSandbox' },
        );
      }
      const dir = path.resolve(options.dir ?? `pilothouse-run-${timestamp()}`);
      const workdir = path.join(dir, '.work');
      const sandboxes = new LocalSandboxTransfer(path.join(workdir, 'sandboxes'));
      if (chosen.localInputFiles.length > 0) {
        const pack = await packInputFiles(chosen.baseDir, chosen.localInputFiles);
        await sandboxes.put(pack.ref, pack.bytes);
        chosen.description['inputSandbox'] = [pack.ref];
      }
      const description = parseJobDescription(chosen.description);
      await mkdir(workdir, { recursive: true });
      const print = (event: Record<string, unknown>, text: string) => {
        if (options.json) process.stdout.write(`${JSON.stringify(event)}\n`);
        else process.stdout.write(`${text}\n`);
      };
      const runner = new JobRunner({
        workdir,
        site: 'Local.localhost',
        ce: null,
        keepWorkdirs: options.keepWorkdir,
        killGraceMs: DEFAULT_KILL_GRACE_MS,
        appStatusPollMs: DEFAULT_APP_STATUS_POLL_MS,
        maxOutputSandboxBytes: DEFAULT_MAX_OUTPUT_SANDBOX_BYTES,
        unpackLimits: { maxBytes: DEFAULT_MAX_UNPACKED_BYTES, maxEntries: DEFAULT_MAX_UNPACKED_ENTRIES },
        transfer: sandboxes,
        baseEnv: process.env,
        clock: systemClock,
        logger: createLogger({ level: 'warn', component: 'run' }),
      });
      const onStatus = (update: StatusUpdate) => {
        const { outputTail: _tail, ...shown } = update;
        const parts = [update.status, update.minorStatus, update.applicationStatus && `(${update.applicationStatus})`];
        print({ event: 'status', at: new Date().toISOString(), ...shown }, parts.filter(Boolean).join(' - '));
      };
      const running = runner.start(
        {
          jobId: LOCAL_JOB_ID,
          attempt: 1,
          owner: process.env.USER ?? 'local',
          group: 'local',
          vo: 'local',
          description,
          cores,
          ...(description.requirements.memoryMB !== undefined && { memoryMB: description.requirements.memoryMB }),
          gpuIds: [],
          jobToken: 'local',
        },
        onStatus,
      );
      const stop = () => running.kill('command');
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const outcome = await running.done;
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      let files: string[] = [];
      if (outcome.outputSandbox) {
        files = await unpackOutputSandbox(createReadStream(sandboxes.fileOf(outcome.outputSandbox)), dir);
      }
      if (!options.keepWorkdir) await rm(workdir, { recursive: true, force: true });
      const exitCode = outcome.exitCode ?? (outcome.status === 'Done' ? 0 : 1);
      if (options.json) process.stdout.write(`${JSON.stringify({ event: 'end', ...outcome, dir, files, exitCode })}\n`);
      else {
        print({}, `${outcome.status}: ${outcome.minorStatus}`);
        print({}, `outputs in ${dir}: ${files.join(' ') || '(none)'}`);
      }
      process.exitCode = exitCode;
    });
}
