/**
 * PilotActivityStore on PostgreSQL. A log batch locks its pilot's activity row while it checks the cap
 * and stores lines (a pilot may reconnect to another replica and replay a batch while the first
 * replica still stores it: each line is stored once, and the cap holds). Usage keeps its peaks per
 * attempt in one upsert.
 */
import type pg from 'pg';
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
import { DEFAULT_MAX_LOG_LINES_PER_PILOT } from '../sqlite/sqlite-pilot-activity-store.ts';
import {
  applyPgMigrations,
  ensureSchema,
  openPgPool,
  run,
  withTransaction,
  type PgMigration,
  type PgOptions,
} from './pg-database.ts';

export const PG_PILOT_ACTIVITY_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    name: 'pilot logs, drain requests, exit records, last node heartbeat, job usage',
    sql: `
      CREATE TABLE pilot_logs (
        pilot_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        line TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (pilot_id, seq)
      );
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
        heartbeat_load1 DOUBLE PRECISION,
        heartbeat_disk_free_mb DOUBLE PRECISION,
        log_lines INTEGER NOT NULL DEFAULT 0,
        dropped_log_lines INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE job_usage (
        job_id BIGINT PRIMARY KEY,
        attempt INTEGER NOT NULL,
        at TEXT NOT NULL,
        cpu_sec DOUBLE PRECISION NOT NULL,
        rss_mb DOUBLE PRECISION NOT NULL,
        peak_rss_mb DOUBLE PRECISION NOT NULL,
        wall_sec DOUBLE PRECISION NOT NULL,
        disk_mb DOUBLE PRECISION,
        peak_disk_mb DOUBLE PRECISION,
        load1 DOUBLE PRECISION
      );
    `,
  },
];

export async function openPgPilotActivityStore(
  options: PgOptions & { maxLogLinesPerPilot?: number },
): Promise<PgPilotActivityStore> {
  const pool = openPgPool(options);
  try {
    await ensureSchema(pool, options.schema);
    await applyPgMigrations(pool, 'pilot-activity', PG_PILOT_ACTIVITY_MIGRATIONS);
  } catch (error) {
    await pool.end();
    throw error;
  }
  return new PgPilotActivityStore(pool, options.maxLogLinesPerPilot ?? DEFAULT_MAX_LOG_LINES_PER_PILOT);
}

const ENSURE = 'INSERT INTO pilot_activity (pilot_id) VALUES ($1) ON CONFLICT (pilot_id) DO NOTHING';

export class PgPilotActivityStore implements PilotActivityStore {
  readonly #pool: pg.Pool;
  readonly #maxLines: number;
  readonly #ownsPool: boolean;

  /** `ownsPool`: close() ends the pool (false when the matcher's stores share one). */
  constructor(pool: pg.Pool, maxLogLinesPerPilot: number, options: { ownsPool?: boolean } = {}) {
    this.#pool = pool;
    this.#maxLines = maxLogLinesPerPilot;
    this.#ownsPool = options.ownsPool ?? true;
  }

  async appendLogs(
    pilotId: string,
    lines: readonly { seq: number; line: string }[],
    dropped: number,
    at: string,
  ): Promise<AppendLogsOutcome> {
    return withTransaction(this.#pool, async (client) => {
      await client.query(ENSURE, [pilotId]);
      const row = (
        await client.query<{ log_lines: number }>(
          'SELECT log_lines FROM pilot_activity WHERE pilot_id = $1 FOR UPDATE',
          [pilotId],
        )
      ).rows[0];
      let room = Math.max(0, this.#maxLines - (row?.log_lines ?? 0));
      const outcome: AppendLogsOutcome = { stored: 0, duplicates: 0, overCap: 0 };
      for (const { seq, line } of lines) {
        if (room === 0) {
          outcome.overCap += 1;
          continue;
        }
        const inserted = await client.query(
          'INSERT INTO pilot_logs (pilot_id, seq, line, received_at) VALUES ($1, $2, $3, $4) ON CONFLICT (pilot_id, seq) DO NOTHING',
          [pilotId, seq, line, at],
        );
        if ((inserted.rowCount ?? 0) === 0) outcome.duplicates += 1;
        else {
          outcome.stored += 1;
          room -= 1;
        }
      }
      // A batch replayed whole repeats the pilot's own count of lost lines: it counts with new lines only.
      const pilotDropped = outcome.stored > 0 ? dropped : 0;
      await client.query(
        'UPDATE pilot_activity SET log_lines = log_lines + $1, dropped_log_lines = dropped_log_lines + $2 WHERE pilot_id = $3',
        [outcome.stored, outcome.overCap + pilotDropped, pilotId],
      );
      return outcome;
    });
  }

  async readLogs(pilotId: string, options: { afterSeq: number; limit: number }): Promise<PilotLogPage> {
    const rows = (
      await run(() =>
        this.#pool.query<{ seq: number; line: string; received_at: string }>(
          'SELECT seq, line, received_at FROM pilot_logs WHERE pilot_id = $1 AND seq > $2 ORDER BY seq LIMIT $3',
          [pilotId, options.afterSeq, options.limit],
        ),
      )
    ).rows;
    return {
      lines: rows.map((row) => ({ seq: row.seq, line: row.line, receivedAt: row.received_at })),
      nextAfterSeq: rows.length === 0 ? null : (rows.at(-1) as { seq: number }).seq,
    };
  }

  async requestDrain(pilotId: string, request: DrainRequest): Promise<void> {
    await withTransaction(this.#pool, async (client) => {
      await client.query(ENSURE, [pilotId]);
      await client.query(
        'UPDATE pilot_activity SET drain_requested_at = $2, drain_requested_by = $3, drain_reason = $4 WHERE pilot_id = $1',
        [pilotId, request.requestedAt, request.requestedBy, request.reason],
      );
    });
  }

  async recordExit(pilotId: string, exit: PilotExitRecord): Promise<void> {
    await withTransaction(this.#pool, async (client) => {
      await client.query(ENSURE, [pilotId]);
      await client.query(
        'UPDATE pilot_activity SET exit_at = $2, exit_reason = $3, exit_jobs_run = $4, exit_jobs_failed = $5 WHERE pilot_id = $1',
        [pilotId, exit.at, exit.reason, exit.jobsRun, exit.jobsFailed],
      );
    });
  }

  async recordHeartbeat(pilotId: string, node: NodeHeartbeat | null, jobs: readonly JobUsageSample[]): Promise<void> {
    await withTransaction(this.#pool, async (client) => {
      if (node !== null) {
        await client.query(ENSURE, [pilotId]);
        await client.query(
          'UPDATE pilot_activity SET heartbeat_at = $2, heartbeat_load1 = $3, heartbeat_disk_free_mb = $4 WHERE pilot_id = $1',
          [pilotId, node.at, node.load1, node.diskFreeMB],
        );
      }
      for (const job of jobs) {
        await client.query(
          `INSERT INTO job_usage (job_id, attempt, at, cpu_sec, rss_mb, peak_rss_mb, wall_sec, disk_mb, peak_disk_mb, load1)
           VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $7, $8)
           ON CONFLICT (job_id) DO UPDATE SET
             peak_rss_mb = CASE WHEN excluded.attempt = job_usage.attempt
                                THEN greatest(job_usage.peak_rss_mb, excluded.rss_mb) ELSE excluded.rss_mb END,
             peak_disk_mb = CASE WHEN excluded.attempt = job_usage.attempt
                                 THEN greatest(coalesce(job_usage.peak_disk_mb, 0), coalesce(excluded.disk_mb, 0))
                                 ELSE excluded.disk_mb END,
             attempt = excluded.attempt, at = excluded.at, cpu_sec = excluded.cpu_sec, rss_mb = excluded.rss_mb,
             wall_sec = excluded.wall_sec, disk_mb = coalesce(excluded.disk_mb, job_usage.disk_mb), load1 = excluded.load1
           WHERE excluded.attempt >= job_usage.attempt`,
          [job.jobId, job.attempt, job.at, job.cpuSec, job.rssMB, job.wallSec, job.diskMB ?? null, node?.load1 ?? null],
        );
      }
    });
  }

  async getActivity(pilotId: string): Promise<PilotActivity> {
    const row = (await run(() => this.#pool.query('SELECT * FROM pilot_activity WHERE pilot_id = $1', [pilotId])))
      .rows[0] as Record<string, unknown> | undefined;
    if (!row) return { drain: null, exit: null, lastHeartbeat: null, logLines: 0, droppedLogLines: 0 };
    const text = (value: unknown): string => (value === null || value === undefined ? '' : String(value));
    const numberOrNull = (value: unknown): number | null =>
      value === null || value === undefined ? null : Number(value);
    return {
      drain:
        row.drain_requested_at === null
          ? null
          : {
              requestedAt: text(row.drain_requested_at),
              requestedBy: text(row.drain_requested_by),
              reason: text(row.drain_reason),
            },
      exit:
        row.exit_at === null
          ? null
          : {
              at: text(row.exit_at),
              reason: text(row.exit_reason),
              jobsRun: numberOrNull(row.exit_jobs_run),
              jobsFailed: numberOrNull(row.exit_jobs_failed),
            },
      lastHeartbeat:
        row.heartbeat_at === null
          ? null
          : {
              at: text(row.heartbeat_at),
              load1: Number(row.heartbeat_load1 ?? 0),
              diskFreeMB: numberOrNull(row.heartbeat_disk_free_mb),
            },
      logLines: Number(row.log_lines),
      droppedLogLines: Number(row.dropped_log_lines),
    };
  }

  async forgetJobs(jobIds: readonly number[]): Promise<void> {
    if (jobIds.length === 0) return;
    await run(() => this.#pool.query('DELETE FROM job_usage WHERE job_id = ANY($1::bigint[])', [jobIds]));
  }

  async prunePilotLogs(before: string): Promise<number> {
    return withTransaction(this.#pool, async (client) => {
      const pilots = (
        await client.query<{ pilot_id: string }>(
          `DELETE FROM pilot_logs WHERE pilot_id IN (
             SELECT pilot_id FROM pilot_logs GROUP BY pilot_id HAVING max(received_at) < $1
           ) RETURNING pilot_id`,
          [before],
        )
      ).rows.map((row) => row.pilot_id);
      const distinct = [...new Set(pilots)];
      await client.query('UPDATE pilot_activity SET log_lines = 0 WHERE pilot_id = ANY($1::text[])', [distinct]);
      return distinct.length;
    });
  }

  async getJobUsage(jobId: number): Promise<JobUsage | null> {
    const row = (await run(() => this.#pool.query('SELECT * FROM job_usage WHERE job_id = $1', [jobId]))).rows[0] as
      Record<string, number | string | null> | undefined;
    if (!row) return null;
    return {
      jobId: Number(row.job_id),
      attempt: Number(row.attempt),
      at: String(row.at),
      cpuSec: Number(row.cpu_sec),
      rssMB: Number(row.rss_mb),
      peakRssMB: Number(row.peak_rss_mb),
      wallSec: Number(row.wall_sec),
      diskMB: row.disk_mb === null ? null : Number(row.disk_mb),
      peakDiskMB: row.peak_disk_mb === null ? null : Number(row.peak_disk_mb),
      load1: row.load1 === null ? null : Number(row.load1),
    };
  }

  async close(): Promise<void> {
    if (this.#ownsPool) await this.#pool.end().catch(() => undefined);
  }
}
