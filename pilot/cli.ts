/**
 * The pilot's command line, shared by `dist/pilot.mjs` (pilot/main.ts) and `pilothouse pilot`.
 * Values stay strings here; compilePilotConfig validates them (bad values exit 2).
 */
import { Command } from 'commander';
import {
  DEFAULT_DRAIN_FILE,
  DEFAULT_DRAIN_GRACE_SEC,
  DEFAULT_CPU_POWER_CACHE_SEC,
  DEFAULT_REPORT_COALESCE_MS,
  DEFAULT_IDLE_TIMEOUT_SEC,
  DEFAULT_JOB_UIDS,
  DEFAULT_KILL_GRACE_MS,
  DEFAULT_MIN_FREE_DISK_MB,
  DEFAULT_SITE,
  DEFAULT_STALL_MIN_CPU_PERCENT,
  DEFAULT_STALL_TIMEOUT_SEC,
  DEFAULT_WATCHDOG_INTERVAL_SEC,
  DEFAULT_WORKDIR,
  LOG_LEVELS,
  type RawPilotOptions,
} from './config.ts';
import { CODE_CACHE_ENV } from './code-cache.ts';
import { runPilot } from './run.ts';

export function buildPilotCommand(): Command {
  return new Command('pilot')
    .description('Run a pilot on this node: probe it, connect to the matcher, pull and run jobs until idle or drained')
    .option(
      '--matcher <urls>',
      "the matcher's base URL, http(s)://host:port (required); several, comma-separated, are tried in turn",
    )
    .option('--token-file <file>', 'file holding the pilot token (default: env PILOTHOUSE_TOKEN)')
    .option('--secret-file <file>', 'file holding a one-time pilot secret, exchanged for a pilot token (needs --stamp)')
    .option('--ca-file <file>', 'CA bundle (PEM) that verifies an https/wss matcher')
    .option('--site <name>', 'site this pilot runs at', DEFAULT_SITE)
    .option('--ce <name>', 'computing element')
    .option('--queue <name>', 'batch queue')
    .option('--stamp <id>', 'pilot stamp (default: env PILOTHOUSE_PILOT_STAMP, else a random id)')
    .option('--workdir <dir>', 'directory for job working directories', DEFAULT_WORKDIR)
    .option('--cores <n>', "the slot's cores (default: what the node and batch system give the pilot)")
    .option('--memory-mb <n>', "the slot's memory, MiB (default: what the node and batch system give the pilot)")
    .option('--wall-time-sec <n>', 'seconds this pilot may live (default: what the batch system says, else unlimited)')
    .option('--gpus <n>', 'offer at most this many GPUs (0: none; more than detected declares unseen ones)')
    .option('--disk-mb <n>', 'offer at most this much scratch disk, MiB (default: what the working area has free)')
    .option('--platform <p>', 'declare the platform, e.g. x86_64-v3 (default: detected from the CPU)')
    .option('--cpu-power <units>', 'declare the CPU power per core (default: measured by a quick benchmark)')
    .option(
      '--cpu-power-cache-sec <n>',
      "reuse this node's measured CPU power for this long, across pilots (0: measure every time)",
      String(DEFAULT_CPU_POWER_CACHE_SEC),
    )
    .option(
      '--report-coalesce-ms <n>',
      'a report that does not end its job waits this long for the next ones, to send them in one frame (0: at once)',
      String(DEFAULT_REPORT_COALESCE_MS),
    )
    .option('--whole-node', 'the slot is a whole node: whole-node jobs may come while nothing runs')
    .option('--tags <a,b>', 'comma-separated tags offered to jobs')
    .option('--required-tags <a,b>', 'only jobs carrying all these tags may come')
    .option('--idle-timeout-sec <n>', 'exit after this long without jobs', String(DEFAULT_IDLE_TIMEOUT_SEC))
    .option('--drain-file <path>', "while this file exists take no work and leave ('none': off)", DEFAULT_DRAIN_FILE)
    .option(
      '--drain-grace-sec <n>',
      'after a drain (SIGTERM, drain file, matcher), running jobs may finish within this',
      String(DEFAULT_DRAIN_GRACE_SEC),
    )
    .option(
      '--stall-timeout-sec <n>',
      'stop a job that makes no CPU progress for this long (0: off)',
      String(DEFAULT_STALL_TIMEOUT_SEC),
    )
    .option(
      '--stall-min-cpu-percent <p>',
      'CPU use (percent of one core) below which a job counts as stalled',
      String(DEFAULT_STALL_MIN_CPU_PERCENT),
    )
    .option('--memory-limit-policy <p>', "a job above its memory: 'kill', 'warn' or 'off'", 'kill')
    .option(
      '--min-disk-free-mb <n>',
      'below this much free disk the job that wrote the most is stopped',
      String(DEFAULT_MIN_FREE_DISK_MB),
    )
    .option(
      '--watchdog-interval-sec <n>',
      'how often running jobs are sampled and checked',
      String(DEFAULT_WATCHDOG_INTERVAL_SEC),
    )
    .option('--kill-grace-sec <n>', 'SIGTERM first, SIGKILL after this', String(DEFAULT_KILL_GRACE_MS / 1000))
    .option('--max-input-sandbox-mb <n>', 'refuse input sandboxes larger than this (download)')
    .option('--max-unpacked-mb <n>', 'refuse input sandboxes that unpack to more than this')
    .option('--max-output-sandbox-mb <n>', 'refuse output sandboxes larger than this (compressed)')
    .option('--keep-workdirs', 'keep job directories after their output is uploaded')
    .option(
      '--isolation <mode>',
      "how payloads are kept from the pilot's credentials and from each other: 'auto' (bwrap where it works, else a uid per job when root, else refuse to start), 'bwrap', 'uid' (root only), 'none'",
      'auto',
    )
    .option('--isolation-ro-paths <a,b>', 'extra directories a bwrap container shows read-only (absolute paths)')
    .option('--job-uids <first-last>', 'uids a root pilot hands to its jobs, one per running job', DEFAULT_JOB_UIDS)
    .option('--log-level <level>', `log level (${LOG_LEVELS.join(', ')})`, 'info')
    .addHelpText(
      'after',
      [
        '',
        'Environment:',
        `  ${CODE_CACHE_ENV}  where the compiled pilot code is kept for the next pilots on this node:`,
        '                         a directory (default: $TMPDIR, else /tmp), or "off"',
      ].join('\n'),
    )
    .action(async (options: RawPilotOptions) => {
      process.exitCode = await runPilot(options, process.env);
    });
}
