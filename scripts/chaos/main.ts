/**
 * `npm run chaos [-- options]`: a chaos run at any size (test/chaos/chaos-run.ts), its figures written
 * to BENCHMARKS.md. Exits 1 when the run broke a promise (each violation printed), 2 on bad options.
 * Needs `npm run build` first (it runs the shipped dist/ programs).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { runChaos, type ChaosOptions, type ChaosReport } from '../../test/chaos/chaos-run.ts';
import { replaceSection, sectionHeader } from '../bench/benchmarks-file.ts';
import { median } from '../bench/stats.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const count = (min: number) => (raw: string) => {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new InvalidArgumentError(`a whole number ≥ ${min}`);
  return value;
};
const seconds = (raw: string) => {
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new InvalidArgumentError('a number of seconds ≥ 0');
  return value;
};

const program = new Command('chaos')
  .description('real matcher and pilots under SIGKILL and SIGSTOP; checks every job Done exactly once')
  .option('--jobs <n>', 'jobs submitted', count(1), 600)
  .option('--pilots <n>', 'pilots kept running (killed ones are replaced)', count(1), 8)
  .option('--pilot-cores <n>', 'cores per pilot, one job per core', count(1), 1)
  .option('--job-sec <s>', 'seconds each payload sleeps', seconds, 5)
  .option('--matcher-kills <n>', 'matcher SIGKILLs, each followed by a restart', count(0), 3)
  .option('--pilot-kills <n>', 'pilots SIGKILLed in the middle of a job', count(0), 3)
  .option('--matched-kills <n>', 'pilots SIGKILLed holding a match they have not started', count(0), 1)
  .option('--freezes <n>', 'pilots SIGSTOPped until their job runs elsewhere, then SIGCONTed', count(0), 1)
  .option('--matcher-down-sec <s>', 'seconds the matcher stays dead after each SIGKILL', seconds, 2)
  .option('--pause-sec <s>', 'seconds between actions', seconds, 5)
  .option('--pilot-timeout-sec <s>', "matcher's --pilot-timeout-sec (default: the matcher's own, 30)", seconds)
  .option('--reconnect-grace-sec <s>', "matcher's --reconnect-grace-sec (default: the matcher's own, 90)", seconds)
  .option(
    '--heartbeat-interval-sec <s>',
    "matcher's --heartbeat-interval-sec (default: the matcher's own, 30)",
    seconds,
  )
  .option(
    '--fault-sweep-interval-sec <s>',
    "matcher's --fault-sweep-interval-sec (default: the matcher's own, 60)",
    seconds,
  )
  .option('--reschedule-delays-sec <list>', "matcher's --reschedule-delays-sec (default: the matcher's own)")
  .option('--timeout-sec <s>', 'give up waiting for the jobs after this long', seconds, 1800)
  .option('--no-write', 'print the figures without rewriting BENCHMARKS.md');

program.parse();
const options = program.opts<ChaosOptions & { write: boolean }>();
if (!existsSync(path.join(root, 'dist', 'cli.mjs'))) {
  console.error('dist/ is missing: run npm run build first');
  process.exit(2);
}

const report = await runChaos({ ...options, progress: (message) => process.stderr.write(`[chaos] ${message}\n`) });
const markdown = describe(report);
process.stdout.write(`${markdown}\n`);
if (options.write) {
  const args = process.argv.slice(2).join(' ');
  const command = args === '' ? 'npm run chaos' : `npm run chaos -- ${args}`;
  await replaceSection('chaos', sectionHeader('Chaos', command) + markdown);
  process.stderr.write('[chaos] figures written to BENCHMARKS.md\n');
}
for (const violation of report.violations) process.stderr.write(`[chaos] VIOLATION ${violation}\n`);
process.exit(report.violations.length === 0 ? 0 : 1);

function describe(report: ChaosReport): string {
  const { options } = report;
  const s = (ms: number[]) =>
    ms.length === 0 ? '–' : `${(median(ms) / 1000).toFixed(1)} s (max ${(Math.max(...ms) / 1000).toFixed(1)} s)`;
  const times = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  const matcherSetting = (value: number | string | undefined, fallback: string) =>
    value === undefined ? `${fallback} (default)` : `${value} s`;
  return [
    `${options.jobs} jobs of ${options.jobSec} s on ${options.pilots} pilots × ${options.pilotCores} core (${report.pilotsStarted} pilot processes in all);`,
    `${times(options.matcherKills, 'matcher SIGKILL')} (${options.matcherDownSec} s down each), ${times(options.pilotKills, 'pilot SIGKILL')} mid-job,`,
    `${times(options.matchedKills, 'pilot SIGKILL')} holding a match not yet started,`,
    `${times(options.freezes, 'pilot SIGSTOP')} mid-job. Matcher settings: pilot timeout ${matcherSetting(options.pilotTimeoutSec, '30 s')},`,
    `reconnect grace ${matcherSetting(options.reconnectGraceSec, '90 s')}, fault sweep every ${matcherSetting(options.faultSweepIntervalSec, '60 s')},`,
    `reschedule holds ${matcherSetting(options.rescheduleDelaysSec, '60,180,300,600 s')}.`,
    '',
    '| figure | median (max) |',
    '| --- | --- |',
    `| matcher restarted → every live pilot connected again | ${s(report.reconnectMs)} |`,
    `| pilot SIGKILLed → its job running again on another pilot | ${s(report.killedPilotJobBackMs)} |`,
    `| pilot SIGKILLed holding an unstarted match → that job running on another pilot | ${s(report.matchedKillJobBackMs)} |`,
    `| pilot SIGSTOPped → dropped by the matcher (job Stalled) | ${s(report.freezeDetectedMs)} |`,
    `| pilot SIGSTOPped → its job running again on another pilot | ${s(report.freezeJobBackMs)} |`,
    `| all ${options.jobs} jobs final | ${(report.durationMs / 1000).toFixed(1)} s |`,
    '',
    `Verdict: ${report.violations.length === 0 ? "every job Done exactly once, in its final attempt, with that attempt's output" : `${report.violations.length} violations`};`,
    `store invariants checked at ${report.crashPointChecks} crash points and at the end; ${report.retried} jobs needed another attempt;`,
    `${report.staleCompletions} payloads of superseded attempts ran to their end, and nothing they produced was kept.`,
  ].join('\n');
}
