/**
 * A chaos run: a real matcher process on SQLite and M real pilots work through N jobs while the run
 * SIGKILLs the matcher (and starts it again on the same port), SIGKILLs pilots in the middle of a job
 * or holding a match they have not started yet (and starts replacements), and freezes pilots
 * (SIGSTOP) beyond the liveness timeout before letting them go on (SIGCONT). Actions come one after
 * another, each after a pause that lets work move on. The run ends when every job is final, then
 * checks what `verify.ts` describes.
 *
 * Figures: how long after a restart every pilot is connected again, how long a killed pilot's job
 * takes to run again elsewhere, how long a frozen pilot takes to be noticed and its job to run again.
 * Used by `npm run chaos` (sizes as options, figures in BENCHMARKS.md) and, small, by a test.
 */
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FINAL_STATUSES, JOB_STATUSES } from '../../shared/job/status.ts';
import type { JobHistoryEntry, JobView } from '../../shared/job/model.ts';
import { waitFor } from '../helpers/wait.ts';
import { Fleet, type FleetPilot } from './fleet.ts';
import { storeViolations, verifyJobs, type FinalJob } from './verify.ts';

export interface ChaosOptions {
  jobs: number;
  pilots: number;
  /** Cores each pilot offers (one job per core). */
  pilotCores: number;
  /** How long each payload sleeps, seconds (fractions allowed). */
  jobSec: number;
  matcherKills: number;
  pilotKills: number;
  /** Pilots SIGKILLed holding a match they had not started (the job still Matched at the matcher). */
  matchedKills: number;
  freezes: number;
  /** How long the matcher stays dead after each SIGKILL, seconds. */
  matcherDownSec: number;
  /** Pause before each action, seconds. */
  pauseSec: number;
  /** `server` liveness options; undefined keeps the matcher's defaults. */
  pilotTimeoutSec?: number;
  reconnectGraceSec?: number;
  heartbeatIntervalSec?: number;
  faultSweepIntervalSec?: number;
  /** e.g. "0" or "60,180,300,600". */
  rescheduleDelaysSec?: string;
  /** Give up waiting for all jobs to be final after this long, seconds. */
  timeoutSec: number;
  progress?: (message: string) => void;
}

export interface ChaosReport {
  options: ChaosOptions;
  durationMs: number;
  pilotsStarted: number;
  /** Per matcher SIGKILL: time from the restarted matcher listening until every live pilot is connected again. */
  reconnectMs: number[];
  /** Per pilot SIGKILL: time until its job runs again (a later attempt Running or beyond). */
  killedPilotJobBackMs: number[];
  /** Per matched-kill: time until the job it held runs again (the matcher learns of no start: only the sweep). */
  matchedKillJobBackMs: number[];
  /** Per freeze: time until the matcher has dropped the pilot (its job Stalled), and until the job runs again. */
  freezeDetectedMs: number[];
  freezeJobBackMs: number[];
  retried: number;
  staleCompletions: number;
  /** Crash points at which the store's invariants were checked. */
  crashPointChecks: number;
  violations: string[];
}

type Action = 'matcher-kill' | 'pilot-kill' | 'matched-kill' | 'freeze';
const NON_FINAL = JOB_STATUSES.filter((status) => !FINAL_STATUSES.has(status));
const RUNNING_AGAIN = new Set(['Running', 'Completing', 'Done']);

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const progress = options.progress ?? (() => undefined);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-chaos-'));
  const markerDir = path.join(dir, 'markers');
  await mkdir(markerDir);
  await chmod(markerDir, 0o1777);
  const fleet = new Fleet({ dir, serverArgs: serverArgs(options), pilotArgs: pilotArgs(options) });
  const report: ChaosReport = {
    options,
    durationMs: 0,
    pilotsStarted: 0,
    reconnectMs: [],
    killedPilotJobBackMs: [],
    matchedKillJobBackMs: [],
    freezeDetectedMs: [],
    freezeJobBackMs: [],
    retried: 0,
    staleCompletions: 0,
    crashPointChecks: 0,
    violations: [],
  };
  const background: Promise<void>[] = [];
  try {
    await fleet.startMatcher();
    const startPilot = () => fleet.startPilot(`chaos-${++report.pilotsStarted}`);
    await Promise.all(Array.from({ length: options.pilots }, startPilot));
    const started = Date.now();
    const ids = await submit(fleet, options, markerDir);
    progress(`${ids.length} jobs submitted to ${options.pilots} pilots`);

    for (const action of schedule(options)) {
      await sleep(options.pauseSec * 1000);
      if (await allFinal(fleet)) {
        report.violations.push(`the jobs were all final before the ${action} action: make the run longer`);
        break;
      }
      if (action === 'matcher-kill') {
        await killMatcher(fleet, options, report);
        progress(`matcher killed and back; pilots reconnected in ${report.reconnectMs.at(-1)} ms`);
      } else if (action === 'pilot-kill' || action === 'matched-kill') {
        const [status, figures] =
          action === 'pilot-kill'
            ? (['Running', report.killedPilotJobBackMs] as const)
            : (['Matched', report.matchedKillJobBackMs] as const);
        if (!(await killOne(fleet, status, options, startPilot, (ms) => void figures.push(ms), background))) {
          report.violations.push(`no job was left running for the ${action} action: make the run longer`);
          break;
        }
      } else {
        if (!(await freezeOne(fleet, options, report))) {
          report.violations.push(`no job was left running for the ${action} action: make the run longer`);
          break;
        }
        progress(
          `frozen pilot dropped after ${report.freezeDetectedMs.at(-1)} ms, its job back after ${report.freezeJobBackMs.at(-1)} ms`,
        );
      }
    }
    await Promise.all(background);
    await waitFor(() => allFinal(fleet), 'every job final', options.timeoutSec * 1000);
    report.durationMs = Date.now() - started;
    progress(`every job final after ${report.durationMs} ms; verifying`);

    const finals = await collectFinalJobs(fleet, ids);
    await fleet.stopAll();
    report.violations.push(...(await storeViolations(fleet.dbFile, 'at the end')));
    const verdict = await verifyJobs(finals, markerDir);
    report.violations.push(...verdict.violations);
    report.retried = verdict.retried;
    report.staleCompletions = verdict.staleCompletions;
    return report;
  } catch (error) {
    const logs = fleet.pilots.map((p) => `--- pilot ${p.stamp} (${p.state})\n${p.process.log().slice(-2000)}`);
    throw new Error(
      `${(error as Error).message}\n--- jobs not final\n${await unfinishedJobs(fleet)}\n--- matcher\n${fleet.matcherLog().slice(-4000)}\n${logs.join('\n')}`,
      {
        cause: error,
      },
    );
  } finally {
    await fleet.stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}

function serverArgs(options: ChaosOptions): string[] {
  const args = ['--max-attempts', String(options.pilotKills + options.matchedKills + options.freezes + 2)];
  if (options.pilotTimeoutSec !== undefined) args.push('--pilot-timeout-sec', String(options.pilotTimeoutSec));
  if (options.reconnectGraceSec !== undefined) args.push('--reconnect-grace-sec', String(options.reconnectGraceSec));
  if (options.heartbeatIntervalSec !== undefined) {
    args.push('--heartbeat-interval-sec', String(options.heartbeatIntervalSec));
  }
  if (options.faultSweepIntervalSec !== undefined) {
    args.push('--fault-sweep-interval-sec', String(options.faultSweepIntervalSec));
  }
  if (options.rescheduleDelaysSec !== undefined) args.push('--reschedule-delays-sec', options.rescheduleDelaysSec);
  return args;
}

function pilotArgs(options: ChaosOptions): string[] {
  // Payloads write their markers into a directory of the run: no container around them.
  return [
    ...['--cores', String(options.pilotCores), '--isolation', 'none', '--drain-file', 'none'],
    ...['--idle-timeout-sec', String(options.timeoutSec)],
  ];
}

/**
 * Matcher and pilot kills in turns, then the freezes: a freeze holds the run for the liveness timeout
 * and the reconnect grace (minutes with the defaults), and the kills need work left to hit.
 */
function schedule(options: ChaosOptions): Action[] {
  const left = {
    'matcher-kill': options.matcherKills,
    'pilot-kill': options.pilotKills,
    'matched-kill': options.matchedKills,
  };
  const actions: Action[] = [];
  while (left['matcher-kill'] + left['pilot-kill'] + left['matched-kill'] > 0) {
    for (const action of ['matcher-kill', 'pilot-kill', 'matched-kill'] as const) {
      if (left[action] > 0) {
        actions.push(action);
        left[action] -= 1;
      }
    }
  }
  return [...actions, ...Array.from({ length: options.freezes }, (): Action => 'freeze')];
}

async function submit(fleet: Fleet, options: ChaosOptions, markerDir: string): Promise<number[]> {
  const marker = (suffix: string) => `${markerDir}/$PILOTHOUSE_JOB_ID.$PILOTHOUSE_JOB_ATTEMPT.${suffix}`;
  const script = [
    `echo "$PILOTHOUSE_JOB_ID $PILOTHOUSE_JOB_ATTEMPT" > attempt.txt`,
    `echo "$PILOTHOUSE_PILOT_STAMP" >> ${marker('start')}`,
    `sleep ${options.jobSec}`,
    `echo "$PILOTHOUSE_PILOT_STAMP" >> ${marker('end')}`,
  ].join('; ');
  const ids: number[] = [];
  for (let first = 0; first < options.jobs; first += 5_000) {
    const batch = Array.from({ length: Math.min(5_000, options.jobs - first) }, (_, n) => ({
      name: `chaos-${first + n}`,
      executable: '/bin/sh',
      arguments: ['-c', script],
      outputSandbox: ['attempt.txt'],
      requirements: { wallTimeSec: 3_600 },
    }));
    ids.push(...((await fleet.api('POST', '/api/jobs', batch)).jobIds as number[]));
  }
  return ids;
}

/** For a failed run: the jobs still to finish (a few, each with its history), as the matcher has them. */
async function unfinishedJobs(fleet: Fleet): Promise<string> {
  const page = await fleet.api('POST', '/api/jobs/search', { status: NON_FINAL, perPage: 20 }).catch(() => null);
  if (page === null) return '(the matcher does not answer)';
  const jobs = (page.jobs ?? []) as JobView[];
  const lines = [`${String(page.total)} not final`];
  for (const [index, job] of jobs.entries()) {
    lines.push(`job ${job.id} attempt ${job.attempt}: ${job.status} (${job.minorStatus}), pilot ${job.pilotId ?? '-'}`);
    if (index >= 5) continue;
    const full = await fleet.api('GET', `/api/jobs/${job.id}`).catch(() => null);
    for (const entry of (full?.history ?? []) as JobHistoryEntry[]) {
      lines.push(`  ${entry.at} ${entry.attempt} ${entry.status} ${entry.minorStatus}`);
    }
  }
  return lines.join('\n');
}

/** True when no job is left to run; undefined while the matcher cannot answer. */
async function allFinal(fleet: Fleet): Promise<true | undefined> {
  const page = await fleet.api('POST', '/api/jobs/search', { status: NON_FINAL, perPage: 1 }).catch(() => undefined);
  return page?.total === 0 ? true : undefined;
}

/**
 * A live pilot holding a job in this status (Running: mid-job; Matched: taken, its start not yet
 * reported); null once every job is final.
 */
async function busyPilot(
  fleet: Fleet,
  status: 'Running' | 'Matched' = 'Running',
): Promise<{ pilot: FleetPilot; job: JobView } | null> {
  return waitFor(async () => {
    if (await allFinal(fleet)) return null;
    const page = await fleet.api('POST', '/api/jobs/search', { status: [status], perPage: 1000 }).catch(() => null);
    for (const job of (page?.jobs ?? []) as JobView[]) {
      const pilot = fleet.alivePilots().find((candidate) => candidate.stamp === job.pilotId);
      if (pilot) return { pilot, job };
    }
    return undefined;
  }, `a pilot holding a ${status} job`);
}

/** When the job is running again in a later attempt (or already further on). */
async function runningAgain(fleet: Fleet, job: JobView, options: ChaosOptions): Promise<number> {
  await waitFor(
    async () => {
      const now = (await fleet.api('GET', `/api/jobs/${job.id}`).catch(() => null)) as JobView | null;
      return now !== null && now.attempt > job.attempt && RUNNING_AGAIN.has(now.status);
    },
    `job ${job.id} running again after attempt ${job.attempt}`,
    options.timeoutSec * 1000,
  );
  return Date.now();
}

async function killMatcher(fleet: Fleet, options: ChaosOptions, report: ChaosReport): Promise<void> {
  const live = fleet.alivePilots().map((pilot) => ({ pilot, connections: Fleet.connections(pilot) }));
  const killedAt = Date.now();
  await fleet.killMatcher('SIGKILL');
  const n = report.reconnectMs.length + 1;
  report.violations.push(...(await storeViolations(fleet.dbFile, `after matcher kill ${n}`)));
  report.crashPointChecks += 1;
  await sleep(Math.max(0, options.matcherDownSec * 1000 - (Date.now() - killedAt)));
  await fleet.startMatcher();
  const listening = Date.now();
  await waitFor(
    async () => live.every(({ pilot, connections }) => Fleet.connections(pilot) > connections || undefined),
    'every live pilot connected again',
    options.timeoutSec * 1000,
  );
  report.reconnectMs.push(Date.now() - listening);
}

/**
 * What became of a job whose pilot was just killed or frozen: `hit` once the matcher took it from
 * the pilot (Stalled, or already a later attempt), `missed` if the pilot's last report, sent before
 * the signal, ended it first.
 */
async function aftermath(fleet: Fleet, job: JobView, timeoutSec: number): Promise<'hit' | 'missed'> {
  return waitFor(
    async () => {
      const now = (await fleet.api('GET', `/api/jobs/${job.id}`).catch(() => null)) as JobView | null;
      if (now === null) return undefined;
      if (now.status === 'Stalled' || now.attempt > job.attempt) return 'hit';
      return FINAL_STATUSES.has(now.status) ? 'missed' : undefined;
    },
    `job ${job.id} taken from its pilot`,
    timeoutSec * 1000,
  );
}

/**
 * SIGKILLs a pilot holding a job in `status`, starts a replacement, and records when the job runs
 * again. Running: in the middle of a job. Matched: a match it has not reported started (a pilot holds
 * its first report up to its coalescing window): the matcher hears of no start, so only the fault
 * sweeper can give the job back, once the pilot is gone for the reconnect grace. Another pilot is
 * tried when the kill missed (the job ended first; for Matched, its start got through first).
 */
async function killOne(
  fleet: Fleet,
  status: 'Running' | 'Matched',
  options: ChaosOptions,
  startPilot: () => Promise<unknown>,
  jobBack: (ms: number) => void,
  background: Promise<void>[],
): Promise<boolean> {
  for (;;) {
    const busy = await busyPilot(fleet, status);
    if (busy === null) return false;
    const { pilot, job } = busy;
    const killedAt = Date.now();
    await fleet.killPilot(pilot);
    await startPilot();
    const outcome =
      status === 'Running'
        ? await aftermath(fleet, job, options.timeoutSec)
        : await matchedAftermath(fleet, job, options.timeoutSec);
    if (outcome === 'missed') continue;
    options.progress?.(
      status === 'Running'
        ? `pilot ${pilot.stamp} killed while running job ${job.id}`
        : `pilot ${pilot.stamp} killed holding job ${job.id}, not started`,
    );
    background.push(runningAgain(fleet, job, options).then((at) => jobBack(at - killedAt)));
    return true;
  }
}

/**
 * What became of a Matched job whose pilot was killed: `hit` once a later attempt exists and the
 * killed attempt never ran (no Running in its history), `missed` if its start reached the matcher.
 */
async function matchedAftermath(fleet: Fleet, job: JobView, timeoutSec: number): Promise<'hit' | 'missed'> {
  return waitFor(
    async () => {
      const now = (await fleet.api('GET', `/api/jobs/${job.id}`).catch(() => null)) as
        (JobView & { history: JobHistoryEntry[] }) | null;
      if (now === null) return undefined;
      const started = now.history.some((entry) => entry.attempt === job.attempt && entry.status === 'Running');
      if (started) return 'missed';
      return now.attempt > job.attempt ? 'hit' : undefined;
    },
    `job ${job.id} given back after its pilot died holding it`,
    timeoutSec * 1000,
  );
}

/** SIGSTOPs a pilot in the middle of a job until the job runs elsewhere, then SIGCONTs it. */
async function freezeOne(fleet: Fleet, options: ChaosOptions, report: ChaosReport): Promise<boolean> {
  for (;;) {
    const busy = await busyPilot(fleet);
    if (busy === null) return false;
    const { pilot, job } = busy;
    const frozenAt = Date.now();
    fleet.freeze(pilot);
    options.progress?.(`pilot ${pilot.stamp} frozen while running job ${job.id}`);
    if ((await aftermath(fleet, job, options.timeoutSec)) === 'missed') {
      fleet.thaw(pilot);
      continue;
    }
    report.freezeDetectedMs.push(Date.now() - frozenAt);
    report.freezeJobBackMs.push((await runningAgain(fleet, job, options)) - frozenAt);
    fleet.thaw(pilot);
    return true;
  }
}

async function collectFinalJobs(fleet: Fleet, ids: readonly number[]): Promise<FinalJob[]> {
  const finals: FinalJob[] = [];
  for (const id of ids) {
    const job = (await fleet.api('GET', `/api/jobs/${id}`)) as JobView & { history: FinalJob['history'] };
    const output = job.outputSandbox === null ? null : await fleet.download(`/api/jobs/${id}/output`);
    finals.push({ job, history: job.history, output });
  }
  return finals;
}
