/**
 * PilotActivityStore on SQLite: the same database file as the job store, its own connection and its
 * own migration table (versions from 200), like the credential store. Log lines are keyed by
 * (pilot, seq), so a batch replayed after a reconnect or a matcher restart is stored once.
 */
import Database from 'better-sqlite3';
import type {
  AppendLogsOutcome,
  DrainRequest,
  JobUsage,
  JobUsageSample,
  NodeHeartbeat,
  PilotActivity,
  PilotActivityStore,
  PilotExitRecord,
  PilotLogPage,
} from '../pilot-activity-store.ts';
import { openSqliteConnection } from './open-database.ts';
import { applyMigrations, type Migration } from './migrations.ts';

/** A pilot that logs more than this keeps its first lines; the rest are counted as dropped. */
export const DEFAULT_MAX_LOG_LINES_PER_PILOT = 200_000;

export const PILOT_ACTIVITY_MIGRATIONS: readonly Migration[] = [
  {
    version: 200,
    name: 'pilot logs, drain requests, exit records, last node heartbeat, job usage',
    sql: `
      CREATE TABLE pilot_logs (
        pilot_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        line TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (pilot_id, seq)
      ) WITHOUT ROWID;

      CREATE TABLE pilot_activity (
        pilot_id TEXT PRIMARY KEY,
        drain_requested_at TEXT,
        drain_requested_by TEXT,
        drain_reason TEXT,
        exit_at TEXT,
        exit_reason TEXT,
        exit_jobs_run INTEGER,
        exit_jobs_failed INTEGER,
        heartbeat_at TEXT,
        heartbeat_load1 REAL,
        heartbeat_disk_free_mb REAL,
        log_lines INTEGER NOT NULL DEFAULT 0,
        dropped_log_lines INTEGER NOT NULL DEFAULT 0
      );

      CREATE TABLE job_usage (
        job_id INTEGER PRIMARY KEY,
        attempt INTEGER NOT NULL,
        at TEXT NOT NULL,
        cpu_sec REAL NOT NULL,
        rss_mb REAL NOT NULL,
        peak_rss_mb REAL NOT NULL,
        wall_sec REAL NOT NULL,
        disk_mb REAL,
        peak_disk_mb REAL,
        load1 REAL
      );
    `,
  },
];

export function openSqlitePilotActivityStore(options: {
  path: string;
  maxLogLinesPerPilot?: number;
  autoCheckpoint?: boolean;
}): SqlitePilotActivityStore {
  const db = openSqliteConnection({
    path: options.path,
    ...(options.autoCheckpoint === undefined ? {} : { autoCheckpoint: options.autoCheckpoint }),
  });
  applyMigrations(db, 'pilot_activity_migrations', PILOT_ACTIVITY_MIGRATIONS);
  return new SqlitePilotActivityStore(db, options.maxLogLinesPerPilot ?? DEFAULT_MAX_LOG_LINES_PER_PILOT);
}

interface ActivityRow {
  drain_requested_at: string | null;
  drain_requested_by: string | null;
  drain_reason: string | null;
  exit_at: string | null;
  exit_reason: string | null;
  exit_jobs_run: number | null;
  exit_jobs_failed: number | null;
  heartbeat_at: string | null;
  heartbeat_load1: number | null;
  heartbeat_disk_free_mb: number | null;
  log_lines: number;
  dropped_log_lines: number;
}

interface UsageRow {
  job_id: number;
  attempt: number;
  at: string;
  cpu_sec: number;
  rss_mb: number;
  peak_rss_mb: number;
  wall_sec: number;
  disk_mb: number | null;
  peak_disk_mb: number | null;
  load1: number | null;
}

export class SqlitePilotActivityStore implements PilotActivityStore {
  readonly #db: Database.Database;
  readonly #maxLines: number;
  readonly #sql;

  constructor(db: Database.Database, maxLogLinesPerPilot: number) {
    this.#db = db;
    this.#maxLines = maxLogLinesPerPilot;
    this.#sql = {
      ensure: db.prepare('INSERT INTO pilot_activity (pilot_id) VALUES (?) ON CONFLICT (pilot_id) DO NOTHING'),
      activity: db.prepare('SELECT * FROM pilot_activity WHERE pilot_id = ?'),
      insertLine: db.prepare(
        'INSERT INTO pilot_logs (pilot_id, seq, line, received_at) VALUES (?, ?, ?, ?) ON CONFLICT (pilot_id, seq) DO NOTHING',
      ),
      countLines: db.prepare(
        'UPDATE pilot_activity SET log_lines = log_lines + ?, dropped_log_lines = dropped_log_lines + ? WHERE pilot_id = ?',
      ),
      readLines: db.prepare(
        'SELECT seq, line, received_at FROM pilot_logs WHERE pilot_id = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
      drain: db.prepare(`
        UPDATE pilot_activity SET drain_requested_at = @requestedAt, drain_requested_by = @requestedBy, drain_reason = @reason
        WHERE pilot_id = @pilotId`),
      exit: db.prepare(`
        UPDATE pilot_activity SET exit_at = @at, exit_reason = @reason, exit_jobs_run = @jobsRun, exit_jobs_failed = @jobsFailed
        WHERE pilot_id = @pilotId`),
      nodeBeat: db.prepare(`
        UPDATE pilot_activity SET heartbeat_at = @at, heartbeat_load1 = @load1, heartbeat_disk_free_mb = @diskFreeMB
        WHERE pilot_id = @pilotId`),
      usage: db.prepare(`
        INSERT INTO job_usage (job_id, attempt, at, cpu_sec, rss_mb, peak_rss_mb, wall_sec, disk_mb, peak_disk_mb, load1)
        VALUES (@jobId, @attempt, @at, @cpuSec, @rssMB, @rssMB, @wallSec, @diskMB, @diskMB, @load1)
        ON CONFLICT (job_id) DO UPDATE SET
          peak_rss_mb = CASE WHEN excluded.attempt = job_usage.attempt THEN max(job_usage.peak_rss_mb, excluded.rss_mb) ELSE excluded.rss_mb END,
          peak_disk_mb = CASE WHEN excluded.attempt = job_usage.attempt
                              THEN max(coalesce(job_usage.peak_disk_mb, 0), coalesce(excluded.disk_mb, 0)) ELSE excluded.disk_mb END,
          attempt = excluded.attempt, at = excluded.at, cpu_sec = excluded.cpu_sec, rss_mb = excluded.rss_mb,
          wall_sec = excluded.wall_sec, disk_mb = coalesce(excluded.disk_mb, job_usage.disk_mb), load1 = excluded.load1
        WHERE excluded.attempt >= job_usage.attempt`),
      getUsage: db.prepare('SELECT * FROM job_usage WHERE job_id = ?'),
    };
  }

  async appendLogs(
    pilotId: string,
    lines: readonly { seq: number; line: string }[],
    dropped: number,
    at: string,
  ): Promise<AppendLogsOutcome> {
    return this.#db
      .transaction((): AppendLogsOutcome => {
        this.#sql.ensure.run(pilotId);
        const row = this.#sql.activity.get(pilotId) as ActivityRow;
        let room = Math.max(0, this.#maxLines - row.log_lines);
        const outcome: AppendLogsOutcome = { stored: 0, duplicates: 0, overCap: 0 };
        for (const { seq, line } of lines) {
          if (room === 0) {
            outcome.overCap += 1;
            continue;
          }
          if (this.#sql.insertLine.run(pilotId, seq, line, at).changes === 0) {
            outcome.duplicates += 1;
          } else {
            outcome.stored += 1;
            room -= 1;
          }
        }
        // `dropped` counts the lines the pilot lost since its last acked batch; a batch replayed whole
        // (nothing new stored) repeats it, so it only counts with new lines.
        const pilotDropped = outcome.stored > 0 ? dropped : 0;
        this.#sql.countLines.run(outcome.stored, outcome.overCap + pilotDropped, pilotId);
        return outcome;
      })
      .immediate();
  }

  async readLogs(pilotId: string, options: { afterSeq: number; limit: number }): Promise<PilotLogPage> {
    const rows = this.#sql.readLines.all(pilotId, options.afterSeq, options.limit) as {
      seq: number;
      line: string;
      received_at: string;
    }[];
    return {
      lines: rows.map((row) => ({ seq: row.seq, line: row.line, receivedAt: row.received_at })),
      nextAfterSeq: rows.length === 0 ? null : (rows.at(-1) as { seq: number }).seq,
    };
  }

  async requestDrain(pilotId: string, request: DrainRequest): Promise<void> {
    this.#db.transaction(() => {
      this.#sql.ensure.run(pilotId);
      this.#sql.drain.run({ pilotId, ...request });
    })();
  }

  async recordExit(pilotId: string, exit: PilotExitRecord): Promise<void> {
    this.#db.transaction(() => {
      this.#sql.ensure.run(pilotId);
      this.#sql.exit.run({ pilotId, ...exit });
    })();
  }

  async recordHeartbeat(pilotId: string, node: NodeHeartbeat | null, jobs: readonly JobUsageSample[]): Promise<void> {
    this.#db.transaction(() => {
      if (node !== null) {
        this.#sql.ensure.run(pilotId);
        this.#sql.nodeBeat.run({ pilotId, ...node });
      }
      for (const job of jobs) this.#sql.usage.run({ ...job, diskMB: job.diskMB, load1: node?.load1 ?? null });
    })();
  }

  async getActivity(pilotId: string): Promise<PilotActivity> {
    const row = this.#sql.activity.get(pilotId) as ActivityRow | undefined;
    if (!row) return { drain: null, exit: null, lastHeartbeat: null, logLines: 0, droppedLogLines: 0 };
    return {
      drain:
        row.drain_requested_at === null
          ? null
          : {
              requestedAt: row.drain_requested_at,
              requestedBy: row.drain_requested_by ?? '',
              reason: row.drain_reason ?? '',
            },
      exit:
        row.exit_at === null
          ? null
          : {
              at: row.exit_at,
              reason: row.exit_reason ?? '',
              jobsRun: row.exit_jobs_run,
              jobsFailed: row.exit_jobs_failed,
            },
      lastHeartbeat:
        row.heartbeat_at === null
          ? null
          : { at: row.heartbeat_at, load1: row.heartbeat_load1 ?? 0, diskFreeMB: row.heartbeat_disk_free_mb },
      logLines: row.log_lines,
      droppedLogLines: row.dropped_log_lines,
    };
  }

  async forgetJobs(jobIds: readonly number[]): Promise<void> {
    if (jobIds.length === 0) return;
    this.#db
      .prepare('DELETE FROM job_usage WHERE job_id IN (SELECT value FROM json_each(?))')
      .run(JSON.stringify(jobIds));
  }

  async prunePilotLogs(before: string): Promise<number> {
    return this.#db
      .transaction((): number => {
        const pilots = new Set(
          this.#db
            .prepare(
              `DELETE FROM pilot_logs WHERE pilot_id IN (
                 SELECT pilot_id FROM pilot_logs GROUP BY pilot_id HAVING max(received_at) < ?
               ) RETURNING pilot_id`,
            )
            .pluck()
            .all(before) as string[],
        );
        const reset = this.#db.prepare('UPDATE pilot_activity SET log_lines = 0 WHERE pilot_id = ?');
        for (const pilotId of pilots) reset.run(pilotId);
        return pilots.size;
      })
      .immediate();
  }

  async getJobUsage(jobId: number): Promise<JobUsage | null> {
    const row = this.#sql.getUsage.get(jobId) as UsageRow | undefined;
    if (!row) return null;
    return {
      jobId: row.job_id,
      attempt: row.attempt,
      at: row.at,
      cpuSec: row.cpu_sec,
      rssMB: row.rss_mb,
      peakRssMB: row.peak_rss_mb,
      wallSec: row.wall_sec,
      diskMB: row.disk_mb,
      peakDiskMB: row.peak_disk_mb,
      load1: row.load1,
    };
  }

  /** While refused, every write fails (SQLITE_READONLY, answered as STORE_UNAVAILABLE): the file is lost. */
  refuseWrites(refuse: boolean): void {
    if (this.#db.open) this.#db.pragma(`query_only = ${refuse ? 'ON' : 'OFF'}`);
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
