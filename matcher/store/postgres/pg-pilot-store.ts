/**
 * PilotStore on PostgreSQL. The `pilots` table belongs to the job store's schema (jobs name their
 * pilot); this store adds the site director's columns, the status history, outputs and director
 * reports. Every report locks its pilot's row, so a hello on one replica and a batch-system status
 * through another are merged one after the other by `mergePilotStatus`.
 */
import type pg from 'pg';
import {
  FINAL_PILOT_STATUSES,
  mergePilotStatus,
  type PilotReportSource,
  type PilotStatus,
} from '../../../shared/pilot/status.ts';
import type { NodeInfo } from '../../../shared/protocol/messages.ts';
import type {
  BackendType,
  DirectorReport,
  PilotCounts,
  PilotOutput,
  PilotRegistration,
  PilotStatusUpdate,
} from '../../../shared/protocol/site-director.ts';
import {
  queueKeyOf,
  type PilotHelloRecord,
  type PilotHistoryEntry,
  type PilotPage,
  type PilotQuery,
  type PilotRecord,
  type PilotStore,
  type QueueKey,
  type RegisterOutcome,
  type StoredDirectorReport,
  type StoredPilotOutput,
  type UpdateOutcome,
} from '../pilot-store.ts';
import { WhereClause } from '../sqlite/where-clause.ts';
import {
  applyPgMigrations,
  ensureSchema,
  openPgPool,
  run,
  withTransaction,
  type PgMigration,
  type PgOptions,
  type PgQueryable,
} from './pg-database.ts';
import { PG_JOB_MIGRATIONS } from './pg-job-migrations.ts';

export const PG_PILOT_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    name: 'pilot records: what the site director says, status history, output, director reports',
    sql: `
      ALTER TABLE pilots
        ADD COLUMN created_at TEXT NOT NULL DEFAULT '1970-01-01T00:00:00.000Z',
        ADD COLUMN status_at TEXT,
        ADD COLUMN connected BOOLEAN NOT NULL DEFAULT false,
        ADD COLUMN director TEXT,
        ADD COLUMN backend TEXT,
        ADD COLUMN backend_ref TEXT,
        ADD COLUMN submitted_at TEXT,
        ADD COLUMN backend_status TEXT,
        ADD COLUMN backend_final BOOLEAN NOT NULL DEFAULT false,
        ADD COLUMN exit_code INTEGER,
        ADD COLUMN tracked BOOLEAN NOT NULL DEFAULT false;
      CREATE INDEX pilots_active ON pilots (vo, site, ce, queue, status)
        WHERE status IN ('Submitted', 'Waiting', 'Running', 'Unknown');
      CREATE INDEX pilots_tracked ON pilots (director) WHERE tracked;
      CREATE INDEX pilots_by_creation ON pilots (created_at);

      CREATE TABLE pilot_history (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        pilot_id TEXT NOT NULL,
        at TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        native TEXT
      );
      CREATE INDEX pilot_history_by_pilot ON pilot_history (pilot_id, id);

      CREATE TABLE pilot_output (
        pilot_id TEXT PRIMARY KEY,
        stdout TEXT NOT NULL,
        stderr TEXT NOT NULL,
        truncated BOOLEAN NOT NULL,
        fetched_at TEXT NOT NULL
      );

      CREATE TABLE site_director_reports (
        director TEXT PRIMARY KEY,
        report TEXT NOT NULL,
        received_at TEXT NOT NULL
      );
    `,
  },
];

const ACTIVE = "('Submitted', 'Waiting', 'Running', 'Unknown')";
const SORT_COLUMNS = { createdAt: 'created_at', statusAt: 'status_at', id: 'id' } as const;
const SELECT_PILOT = `SELECT pilots.*, (SELECT count(*) FROM jobs WHERE jobs.pilot_id = pilots.id) AS jobs_matched,
  EXISTS (SELECT 1 FROM pilot_output WHERE pilot_output.pilot_id = pilots.id) AS has_output FROM pilots`;

interface StateRow {
  status: PilotStatus;
  connected: boolean;
  backend_final: boolean;
  vo: string;
  site: string;
  director: string | null;
  backend_ref: string | null;
}

function pilotFromRow(row: Record<string, unknown>): PilotRecord {
  const text = (value: unknown): string | null => (value === null || value === undefined ? null : String(value));
  return {
    id: String(row.id),
    vo: String(row.vo),
    site: String(row.site),
    ce: text(row.ce),
    queue: text(row.queue),
    status: row.status as PilotStatus,
    statusReason: String(row.status_reason),
    statusAt: text(row.status_at),
    createdAt: String(row.created_at),
    node: row.node ? (JSON.parse(String(row.node)) as NodeInfo) : null,
    pilotVersion: text(row.pilot_version),
    connectedAt: text(row.connected_at),
    lastSeenAt: text(row.last_seen_at),
    connected: row.connected === true,
    jobsMatched: Number(row.jobs_matched),
    director: text(row.director),
    backend: text(row.backend) as BackendType | null,
    backendRef: text(row.backend_ref),
    submittedAt: text(row.submitted_at),
    backendStatus: text(row.backend_status),
    exitCode: row.exit_code === null || row.exit_code === undefined ? null : Number(row.exit_code),
    tracked: row.tracked === true,
    hasOutput: row.has_output === true,
  };
}

export async function openPgPilotStore(options: PgOptions): Promise<PgPilotStore> {
  const pool = openPgPool(options);
  try {
    await ensureSchema(pool, options.schema);
    // The pilots table is the job store's: its schema comes first.
    await applyPgMigrations(pool, 'jobs', PG_JOB_MIGRATIONS);
    await applyPgMigrations(pool, 'pilots', PG_PILOT_MIGRATIONS);
  } catch (error) {
    await pool.end();
    throw error;
  }
  return new PgPilotStore(pool);
}

async function lockPilot(client: PgQueryable, id: string): Promise<StateRow | undefined> {
  return (
    await client.query<StateRow>(
      'SELECT status, connected, backend_final, vo, site, director, backend_ref FROM pilots WHERE id = $1 FOR UPDATE',
      [id],
    )
  ).rows[0];
}

async function addHistory(
  client: PgQueryable,
  id: string,
  at: string,
  status: PilotStatus,
  reason: string,
  source: PilotReportSource | 'director',
  native: string | null,
): Promise<void> {
  await client.query(
    'INSERT INTO pilot_history (pilot_id, at, status, reason, source, native) VALUES ($1, $2, $3, $4, $5, $6)',
    [id, at, status, reason, source, native],
  );
}

/** Applies a report through the merge rule; records it in the history when it changes anything. */
async function apply(
  client: PgQueryable,
  id: string,
  row: StateRow,
  status: PilotStatus,
  reason: string,
  source: PilotReportSource,
  at: string,
  native: string | null,
  alwaysRecord: boolean,
): Promise<boolean> {
  const applies = mergePilotStatus(
    { status: row.status, connected: row.connected, backendFinal: row.backend_final },
    status,
    source,
  );
  if (applies) {
    await client.query('UPDATE pilots SET status = $1, status_reason = $2, status_at = $3 WHERE id = $4', [
      status,
      reason,
      at,
      id,
    ]);
    await addHistory(client, id, at, status, reason, source, native);
  } else if (alwaysRecord) {
    await addHistory(client, id, at, row.status, reason, source, native);
  }
  return applies;
}

export class PgPilotStore implements PilotStore {
  readonly #pool: pg.Pool;
  readonly #ownsPool: boolean;

  /** `ownsPool`: close() ends the pool (false when the matcher's stores share one). */
  constructor(pool: pg.Pool, options: { ownsPool?: boolean } = {}) {
    this.#pool = pool;
    this.#ownsPool = options.ownsPool ?? true;
  }

  async registerPilots(director: string, pilots: readonly PilotRegistration[], at: string): Promise<RegisterOutcome> {
    return withTransaction(this.#pool, async (client) => {
      const outcome: RegisterOutcome = { registered: 0, alreadyRegistered: 0, conflicts: [] };
      // Locks in a fixed order: two directors registering overlapping stamps cannot deadlock.
      for (const pilot of [...pilots].sort((a, b) => a.stamp.localeCompare(b.stamp))) {
        const reason = `submitted by ${director}`;
        const inserted = await client.query(
          `INSERT INTO pilots (id, vo, site, ce, queue, status, status_reason, status_at, created_at, director, backend,
                               backend_ref, submitted_at, tracked)
           VALUES ($1, $2, $3, $4, $5, 'Submitted', $6, $7, $8, $9, $10, $11, $8, true)
           ON CONFLICT (id) DO NOTHING`,
          [
            pilot.stamp,
            pilot.vo,
            pilot.site,
            pilot.ce,
            pilot.queue,
            reason,
            at,
            pilot.submittedAt,
            director,
            pilot.backend,
            pilot.backendRef,
          ],
        );
        if ((inserted.rowCount ?? 0) > 0) {
          await addHistory(client, pilot.stamp, at, 'Submitted', reason, 'director', null);
          outcome.registered += 1;
          continue;
        }
        const row = (await lockPilot(client, pilot.stamp)) as StateRow;
        if (row.vo !== pilot.vo || row.site !== pilot.site) outcome.conflicts.push(pilot.stamp);
        else if (row.director === null) {
          // A pilot may say hello before its director registers it (a fast local backend).
          await client.query(
            `UPDATE pilots SET director = $2, backend = $3, backend_ref = $4, submitted_at = $5,
               created_at = least(created_at, $5), tracked = true, ce = coalesce(ce, $6), queue = coalesce(queue, $7)
             WHERE id = $1`,
            [pilot.stamp, director, pilot.backend, pilot.backendRef, pilot.submittedAt, pilot.ce, pilot.queue],
          );
          await addHistory(client, pilot.stamp, at, row.status, reason, 'director', null);
          outcome.registered += 1;
        } else if (row.director === director && row.backend_ref === pilot.backendRef) outcome.alreadyRegistered += 1;
        else outcome.conflicts.push(pilot.stamp);
      }
      return outcome;
    });
  }

  async recordHello(hello: PilotHelloRecord): Promise<void> {
    await withTransaction(this.#pool, async (client) => {
      const node = JSON.stringify(hello.node);
      const inserted = await client.query(
        `INSERT INTO pilots (id, vo, site, ce, queue, status, status_reason, status_at, created_at, node, pilot_version,
                             connected_at, last_seen_at, connected)
         VALUES ($1, $2, $3, $4, $5, 'Running', 'connected', $6, $6, $7, $8, $6, $6, true)
         ON CONFLICT (id) DO NOTHING`,
        [hello.id, hello.vo, hello.site, hello.ce, hello.queue, hello.at, node, hello.pilotVersion],
      );
      if ((inserted.rowCount ?? 0) > 0) {
        await addHistory(client, hello.id, hello.at, 'Running', 'connected', 'pilot', null);
        return;
      }
      const row = (await lockPilot(client, hello.id)) as StateRow;
      await client.query(
        `UPDATE pilots SET node = $2, pilot_version = $3, connected_at = $4, last_seen_at = $4, connected = true,
           ce = coalesce(ce, $5), queue = coalesce(queue, $6) WHERE id = $1`,
        [hello.id, node, hello.pilotVersion, hello.at, hello.ce, hello.queue],
      );
      await apply(client, hello.id, row, 'Running', 'connected', 'pilot', hello.at, null, true);
    });
  }

  async recordBye(id: string, reason: string, at: string): Promise<void> {
    await withTransaction(this.#pool, async (client) => {
      const row = await lockPilot(client, id);
      if (!row) return;
      await client.query('UPDATE pilots SET connected = false, last_seen_at = $2 WHERE id = $1', [id, at]);
      await apply(client, id, { ...row, connected: false }, 'Done', reason, 'pilot', at, null, true);
    });
  }

  async recordDisconnect(id: string, at: string): Promise<void> {
    await withTransaction(this.#pool, async (client) => {
      const row = await lockPilot(client, id);
      if (!row || !row.connected) return;
      await client.query('UPDATE pilots SET connected = false, last_seen_at = $2 WHERE id = $1', [id, at]);
      await addHistory(client, id, at, row.status, 'disconnected', 'pilot', null);
    });
  }

  async applyBackendUpdates(updates: readonly PilotStatusUpdate[]): Promise<UpdateOutcome> {
    return withTransaction(this.#pool, async (client) => {
      const outcome: UpdateOutcome = { applied: [], unchanged: [], unknown: [] };
      for (const update of updates) {
        const row = await lockPilot(client, update.stamp);
        if (!row) {
          outcome.unknown.push(update.stamp);
          continue;
        }
        const statusChanged = await apply(
          client,
          update.stamp,
          row,
          update.status,
          update.reason,
          'backend',
          update.at,
          update.native,
          false,
        );
        const facts = await client.query(
          `UPDATE pilots SET backend_status = $2, exit_code = coalesce($3, exit_code),
             backend_final = backend_final OR $4, tracked = CASE WHEN $5 THEN false ELSE tracked END
           WHERE id = $1 AND (backend_status IS DISTINCT FROM $2 OR ($3::int IS NOT NULL AND exit_code IS DISTINCT FROM $3)
                              OR ($4 AND NOT backend_final) OR ($5 AND tracked))`,
          [
            update.stamp,
            update.native,
            update.exitCode,
            FINAL_PILOT_STATUSES.has(update.status) && update.status !== 'Lost',
            update.untrack,
          ],
        );
        const untracked = update.untrack && (facts.rowCount ?? 0) > 0;
        (statusChanged || untracked ? outcome.applied : outcome.unchanged).push(update.stamp);
      }
      return outcome;
    });
  }

  async getPilot(id: string): Promise<PilotRecord | null> {
    const row = (await run(() => this.#pool.query(`${SELECT_PILOT} WHERE id = $1`, [id]))).rows[0] as
      Record<string, unknown> | undefined;
    return row ? pilotFromRow(row) : null;
  }

  async getHistory(id: string): Promise<PilotHistoryEntry[]> {
    const rows = (
      await run(() => this.#pool.query('SELECT * FROM pilot_history WHERE pilot_id = $1 ORDER BY id', [id]))
    ).rows;
    return rows.map((row: Record<string, unknown>) => ({
      at: String(row.at),
      status: row.status as PilotStatus,
      reason: String(row.reason),
      source: row.source as PilotHistoryEntry['source'],
      native: row.native === null ? null : String(row.native),
    }));
  }

  async searchPilots(query: PilotQuery): Promise<PilotPage> {
    const where = new WhereClause((n) => `$${n}`)
      .in('id', query.ids)
      .in('vo', query.vos)
      .in('site', query.sites)
      .in('ce', query.ces)
      .in('queue', query.queues)
      .in('status', query.statuses)
      .in('director', query.directors)
      .when('created_at >= ?', query.createdAfter)
      .when('created_at < ?', query.createdBefore);
    if (query.tracked !== undefined) where.raw(query.tracked ? 'tracked' : 'NOT tracked');
    const params = where.params;
    const order = `${SORT_COLUMNS[query.sort.field]} ${query.sort.direction === 'desc' ? 'DESC' : 'ASC'}, id ASC`;
    const [total, rows] = await Promise.all([
      run(() => this.#pool.query<{ n: number }>(`SELECT count(*) AS n FROM pilots ${where.sql}`, params)),
      run(() =>
        this.#pool.query(
          `${SELECT_PILOT} ${where.sql} ORDER BY ${order} LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
          [...params, query.perPage, (query.page - 1) * query.perPage],
        ),
      ),
    ]);
    return { total: total.rows[0]?.n ?? 0, pilots: rows.rows.map((row: Record<string, unknown>) => pilotFromRow(row)) };
  }

  async countActive(keys: readonly QueueKey[]): Promise<Map<string, PilotCounts>> {
    const counts = new Map<string, PilotCounts>();
    for (const key of keys) counts.set(queueKeyOf(key), { waiting: 0, running: 0, unknown: 0 });
    // A pilot its batch system runs but that has not reached the matcher yet counts as waiting.
    const rows = (
      await run(() =>
        this.#pool.query<QueueKey & { status: PilotStatus; n: number }>(
          `SELECT vo, site, ce, queue,
                  CASE WHEN status = 'Running' AND connected_at IS NULL THEN 'Waiting' ELSE status END AS status,
                  count(*) AS n
           FROM pilots WHERE status IN ${ACTIVE} GROUP BY 1, 2, 3, 4, 5`,
        ),
      )
    ).rows;
    for (const row of rows) {
      const entry = counts.get(queueKeyOf(row));
      if (!entry) continue;
      if (row.status === 'Running') entry.running += row.n;
      else if (row.status === 'Unknown') entry.unknown += row.n;
      else entry.waiting += row.n;
    }
    return counts;
  }

  async storeOutput(id: string, output: PilotOutput, at: string): Promise<boolean> {
    const stored = await run(() =>
      this.#pool.query(
        `INSERT INTO pilot_output (pilot_id, stdout, stderr, truncated, fetched_at)
         SELECT id, $2, $3, $4, $5 FROM pilots WHERE id = $1
         ON CONFLICT (pilot_id) DO UPDATE SET stdout = excluded.stdout, stderr = excluded.stderr,
           truncated = excluded.truncated, fetched_at = excluded.fetched_at`,
        [id, output.stdout, output.stderr, output.truncated, at],
      ),
    );
    return (stored.rowCount ?? 0) > 0;
  }

  async getOutput(id: string): Promise<StoredPilotOutput | null> {
    const row = (await run(() => this.#pool.query('SELECT * FROM pilot_output WHERE pilot_id = $1', [id]))).rows[0] as
      Record<string, unknown> | undefined;
    if (!row) return null;
    return {
      stdout: String(row.stdout),
      stderr: String(row.stderr),
      truncated: row.truncated === true,
      fetchedAt: String(row.fetched_at),
    };
  }

  async saveDirectorReport(report: DirectorReport, at: string): Promise<void> {
    await run(() =>
      this.#pool.query(
        `INSERT INTO site_director_reports (director, report, received_at) VALUES ($1, $2, $3)
         ON CONFLICT (director) DO UPDATE SET report = excluded.report, received_at = excluded.received_at`,
        [report.director, JSON.stringify(report), at],
      ),
    );
  }

  async directorReports(): Promise<StoredDirectorReport[]> {
    const rows = (await run(() => this.#pool.query('SELECT * FROM site_director_reports ORDER BY director'))).rows;
    return rows.map((row: Record<string, unknown>) => ({
      report: JSON.parse(String(row.report)) as DirectorReport,
      receivedAt: String(row.received_at),
    }));
  }

  async close(): Promise<void> {
    if (this.#ownsPool) await this.#pool.end().catch(() => undefined);
  }
}
