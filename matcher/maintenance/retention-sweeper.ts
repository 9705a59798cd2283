/**
 * Keeps the store and the sandbox directory from growing forever (DIRAC's JobCleaningAgent):
 *
 *  1. jobs in Done, Completed, Failed or Killed whose last update is older than `finalJobsDays` are
 *     removed with their history, commands, output tails and usage; Deleted jobs after `deletedJobsDays`;
 *  2. sandboxes no job in the store names, unused for `unusedSandboxesDays`, are forgotten and their
 *     files deleted (a submission naming one marks it used, in the same transaction);
 *  3. the log of a pilot whose latest line is older than `pilotLogsDays` is dropped.
 *
 * Each age may be null (kept forever). Jobs go in batches of `batchSize`, each its own transaction,
 * so a large purge never holds the store for long.
 */
import type { Clock } from '../../shared/clock.ts';
import { PilothouseError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { JobStore } from '../store/job-store.ts';
import type { PilotActivityStore } from '../store/pilot-activity-store.ts';
import type { SandboxStore } from '../sandbox/sandbox-store.ts';

export interface RetentionOptions {
  finalJobsDays: number | null;
  deletedJobsDays: number | null;
  unusedSandboxesDays: number | null;
  pilotLogsDays: number | null;
  sweepIntervalMs: number;
  batchSize: number;
}

export const DEFAULT_RETENTION: RetentionOptions = {
  finalJobsDays: 90,
  deletedJobsDays: 7,
  unusedSandboxesDays: 7,
  pilotLogsDays: 30,
  sweepIntervalMs: 3_600_000,
  batchSize: 2_000,
};

export interface RawRetentionOptions {
  purgeFinalJobsAfterDays?: string | undefined;
  purgeDeletedJobsAfterDays?: string | undefined;
  purgeUnusedSandboxesAfterDays?: string | undefined;
  purgePilotLogsAfterDays?: string | undefined;
  retentionSweepIntervalSec?: number | undefined;
}

/** A number of days (fractions allowed), or `never`. */
function days(raw: string | undefined, flag: string, fallback: number | null): number | null {
  if (raw === undefined) return fallback;
  if (raw.trim() === 'never') return null;
  const value = Number(raw);
  if (!/^\s*\d+(\.\d+)?\s*$/.test(raw) || !(value > 0) || value > 36_500) {
    throw new PilothouseError('CONFIG_INVALID', `--${flag} must be a number of days above 0 (at most 36500) or never`, {
      field: flag,
    });
  }
  return value;
}

export function compileRetention(raw: RawRetentionOptions): RetentionOptions {
  const intervalSec = raw.retentionSweepIntervalSec ?? DEFAULT_RETENTION.sweepIntervalMs / 1000;
  if (!Number.isFinite(intervalSec) || intervalSec < 0.1 || intervalSec > 86_400) {
    throw new PilothouseError('CONFIG_INVALID', '--retention-sweep-interval-sec must be between 0.1 and 86400', {
      field: 'retention-sweep-interval-sec',
    });
  }
  return {
    finalJobsDays: days(raw.purgeFinalJobsAfterDays, 'purge-final-jobs-after-days', DEFAULT_RETENTION.finalJobsDays),
    deletedJobsDays: days(
      raw.purgeDeletedJobsAfterDays,
      'purge-deleted-jobs-after-days',
      DEFAULT_RETENTION.deletedJobsDays,
    ),
    unusedSandboxesDays: days(
      raw.purgeUnusedSandboxesAfterDays,
      'purge-unused-sandboxes-after-days',
      DEFAULT_RETENTION.unusedSandboxesDays,
    ),
    pilotLogsDays: days(raw.purgePilotLogsAfterDays, 'purge-pilot-logs-after-days', DEFAULT_RETENTION.pilotLogsDays),
    sweepIntervalMs: Math.round(intervalSec * 1000),
    batchSize: DEFAULT_RETENTION.batchSize,
  };
}

export interface RetentionReport {
  jobs: number;
  sandboxes: number;
  pilotLogs: number;
}

export interface RetentionSweeperDeps {
  store: JobStore;
  activity: PilotActivityStore;
  sandboxes: SandboxStore;
  clock: Clock;
  logger: Logger;
  options: RetentionOptions;
}

const DAY_MS = 86_400_000;

export class RetentionSweeper {
  readonly #deps: RetentionSweeperDeps;

  constructor(deps: RetentionSweeperDeps) {
    this.#deps = deps;
  }

  #cutoff(days: number | null): string | null {
    return days === null ? null : new Date(this.#deps.clock.nowMs() - days * DAY_MS).toISOString();
  }

  async sweep(): Promise<RetentionReport> {
    const { store, activity, sandboxes, options, logger } = this.#deps;
    const report: RetentionReport = { jobs: 0, sandboxes: 0, pilotLogs: 0 };
    const finalBefore = this.#cutoff(options.finalJobsDays);
    const deletedBefore = this.#cutoff(options.deletedJobsDays);
    if (finalBefore !== null || deletedBefore !== null) {
      for (;;) {
        const ids = await store.purgeJobs({ finalBefore, deletedBefore, limit: options.batchSize });
        await activity.forgetJobs(ids);
        report.jobs += ids.length;
        if (ids.length < options.batchSize) break;
      }
    }
    const sandboxesBefore = this.#cutoff(options.unusedSandboxesDays);
    if (sandboxesBefore !== null) {
      for (;;) {
        const gone = await store.purgeUnusedSandboxes(sandboxesBefore, options.batchSize);
        // The row goes first: a submission can no longer name the sandbox once its file is deleted.
        for (const sha256 of gone) await sandboxes.delete(sha256);
        report.sandboxes += gone.length;
        if (gone.length < options.batchSize) break;
      }
    }
    const logsBefore = this.#cutoff(options.pilotLogsDays);
    if (logsBefore !== null) report.pilotLogs = await activity.prunePilotLogs(logsBefore);
    if (report.jobs + report.sandboxes + report.pilotLogs > 0) logger.info(report, 'retention sweep purged');
    return report;
  }
}
