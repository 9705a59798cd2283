/**
 * PilotStore on SQLite: the same file as the job store, its own connection and migration table
 * (versions from 300). The `pilots` table itself was created by the job store's first migration; this
 * store extends it with what the site director says, and adds the status history, pilot output and
 * director reports. Every change of one report runs in one transaction with its history entry.
 */
import type Database from 'better-sqlite3';
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
import { applyMigrations, type Migration } from './migrations.ts';
import { openSqliteConnection } from './open-database.ts';
import { WhereClause } from './where-clause.ts';
import { migrateJobStore } from './sqlite-job-store.ts';

export const PILOT_STORE_MIGRATIONS: readonly Migration[] = [
  {
    version: 300,
    name: 'pilot records: what the site director says, status history, output, director reports',
    sql: `
      ALTER TABLE pilots ADD COLUMN created_at TEXT;
      UPDATE pilots SET created_at = coalesce(connected_at, last_seen_at, '1970-01-01T00:00:00.000Z');
      ALTER TABLE pilots ADD COLUMN status_at TEXT;
      ALTER TABLE pilots ADD COLUMN connected INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE pilots ADD COLUMN director TEXT;
      ALTER TABLE pilots ADD COLUMN backend TEXT;
      ALTER TABLE pilots ADD COLUMN backend_ref TEXT;
      ALTER TABLE pilots ADD COLUMN submitted_at TEXT;
      ALTER TABLE pilots ADD COLUMN backend_status TEXT;
      ALTER TABLE pilots ADD COLUMN backend_final INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE pilots ADD COLUMN exit_code INTEGER;
      ALTER TABLE pilots ADD COLUMN tracked INTEGER NOT NULL DEFAULT 0;
      -- What demand counts (pilots not ended, per queue), and what a director follows.
      CREATE INDEX pilots_active ON pilots (vo, site, ce, queue, status)
        WHERE status IN ('Submitted', 'Waiting', 'Running', 'Unknown');
      CREATE INDEX pilots_tracked ON pilots (director) WHERE tracked = 1;
      CREATE INDEX pilots_by_creation ON pilots (created_at);

      CREATE TABLE pilot_history (
        id INTEGER PRIMARY KEY,
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
        truncated INTEGER NOT NULL,
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
const SELECT_PILOT = `SELECT *, (SELECT count(*) FROM jobs WHERE jobs.pilot_id = pilots.id) AS jobs_matched,
  EXISTS (SELECT 1 FROM pilot_output WHERE pilot_output.pilot_id = pilots.id) AS has_output FROM pilots`;

interface PilotRow {
  id: string;
  vo: string;
  site: string;
  ce: string | null;
  queue: string | null;
  status: PilotStatus;
  status_reason: string;
  status_at: string | null;
  created_at: string;
  node: string | null;
  pilot_version: string | null;
  connected_at: string | null;
  last_seen_at: string | null;
  connected: number;
  jobs_matched: number;
  director: string | null;
  backend: string | null;
  backend_ref: string | null;
  submitted_at: string | null;
  backend_status: string | null;
  backend_final: number;
  exit_code: number | null;
  tracked: number;
  has_output: number;
}

function pilotFromRow(row: PilotRow): PilotRecord {
  return {
    id: row.id,
    vo: row.vo,
    site: row.site,
    ce: row.ce,
    queue: row.queue,
    status: row.status,
    statusReason: row.status_reason,
    statusAt: row.status_at,
    createdAt: row.created_at,
    node: row.node ? (JSON.parse(row.node) as NodeInfo) : null,
    pilotVersion: row.pilot_version,
    connectedAt: row.connected_at,
    lastSeenAt: row.last_seen_at,
    connected: row.connected === 1,
    jobsMatched: row.jobs_matched,
    director: row.director,
    backend: row.backend as BackendType | null,
    backendRef: row.backend_ref,
    submittedAt: row.submitted_at,
    backendStatus: row.backend_status,
    exitCode: row.exit_code,
    tracked: row.tracked === 1,
    hasOutput: row.has_output === 1,
  };
}

export function openSqlitePilotStore(options: { path: string; autoCheckpoint?: boolean }): SqlitePilotStore {
  const db = openSqliteConnection({
    path: options.path,
    ...(options.autoCheckpoint === undefined ? {} : { autoCheckpoint: options.autoCheckpoint }),
  });
  migrateJobStore(db);
  applyMigrations(db, 'pilot_store_migrations', PILOT_STORE_MIGRATIONS);
  return new SqlitePilotStore(db);
}

export class SqlitePilotStore implements PilotStore {
  readonly #db: Database.Database;
  readonly #sql;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#sql = {
      get: db.prepare(`${SELECT_PILOT} WHERE id = ?`),
      state: db.prepare(
        'SELECT status, connected, backend_final, vo, site, ce, queue, director, backend_ref FROM pilots WHERE id = ?',
      ),
      history: db.prepare('SELECT * FROM pilot_history WHERE pilot_id = ? ORDER BY id'),
      addHistory: db.prepare(
        'INSERT INTO pilot_history (pilot_id, at, status, reason, source, native) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      insertSubmitted: db.prepare(`
        INSERT INTO pilots (id, vo, site, ce, queue, status, status_reason, status_at, created_at, director, backend,
                            backend_ref, submitted_at, tracked)
        VALUES (@stamp, @vo, @site, @ce, @queue, 'Submitted', @reason, @at, @submittedAt, @director, @backend,
                @backendRef, @submittedAt, 1)`),
      // A pilot may say hello before its director registers it (a fast local backend).
      adoptSubmitted: db.prepare(`
        UPDATE pilots SET director = @director, backend = @backend, backend_ref = @backendRef,
          submitted_at = @submittedAt, created_at = min(created_at, @submittedAt), tracked = 1,
          ce = coalesce(ce, @ce), queue = coalesce(queue, @queue)
        WHERE id = @stamp`),
      insertHello: db.prepare(`
        INSERT INTO pilots (id, vo, site, ce, queue, status, status_reason, status_at, created_at, node, pilot_version,
                            connected_at, last_seen_at, connected)
        VALUES (@id, @vo, @site, @ce, @queue, 'Running', 'connected', @at, @at, @node, @pilotVersion, @at, @at, 1)`),
      updateHello: db.prepare(`
        UPDATE pilots SET node = @node, pilot_version = @pilotVersion, connected_at = @at, last_seen_at = @at,
          connected = 1, ce = coalesce(ce, @ce), queue = coalesce(queue, @queue)
        WHERE id = @id`),
      setStatus: db.prepare('UPDATE pilots SET status = ?, status_reason = ?, status_at = ? WHERE id = ?'),
      disconnect: db.prepare('UPDATE pilots SET connected = 0, last_seen_at = ? WHERE id = ?'),
      backendFacts: db.prepare(`
        UPDATE pilots SET backend_status = @native, exit_code = coalesce(@exitCode, exit_code),
          backend_final = max(backend_final, @final), tracked = CASE WHEN @untrack THEN 0 ELSE tracked END
        WHERE id = @stamp`),
      // A pilot its batch system runs but that has not reached the matcher yet is still starting: it
      // will take a waiting job, so it counts with the waiting ones.
      activeCounts: db.prepare(
        `SELECT vo, site, ce, queue,
                CASE WHEN status = 'Running' AND connected_at IS NULL THEN 'Waiting' ELSE status END AS status,
                count(*) AS n
         FROM pilots WHERE status IN ${ACTIVE} GROUP BY 1, 2, 3, 4, 5`,
      ),
      upsertOutput: db.prepare(`
        INSERT INTO pilot_output (pilot_id, stdout, stderr, truncated, fetched_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (pilot_id) DO UPDATE SET stdout = excluded.stdout, stderr = excluded.stderr,
          truncated = excluded.truncated, fetched_at = excluded.fetched_at`),
      getOutput: db.prepare('SELECT * FROM pilot_output WHERE pilot_id = ?'),
      upsertReport: db.prepare(`
        INSERT INTO site_director_reports (director, report, received_at) VALUES (?, ?, ?)
        ON CONFLICT (director) DO UPDATE SET report = excluded.report, received_at = excluded.received_at`),
      reports: db.prepare('SELECT * FROM site_director_reports ORDER BY director'),
    };
  }

  async registerPilots(director: string, pilots: readonly PilotRegistration[], at: string): Promise<RegisterOutcome> {
    const sql = this.#sql;
    return this.#db
      .transaction((): RegisterOutcome => {
        const outcome: RegisterOutcome = { registered: 0, alreadyRegistered: 0, conflicts: [] };
        for (const pilot of pilots) {
          const row = sql.state.get(pilot.stamp) as StateRow | undefined;
          const params = { ...pilot, director, at, reason: `submitted by ${director}` };
          if (!row) {
            sql.insertSubmitted.run(params);
            sql.addHistory.run(pilot.stamp, at, 'Submitted', params.reason, 'director', null);
            outcome.registered += 1;
          } else if (row.vo !== pilot.vo || row.site !== pilot.site) {
            outcome.conflicts.push(pilot.stamp);
          } else if (row.director === null) {
            sql.adoptSubmitted.run(params);
            sql.addHistory.run(pilot.stamp, at, row.status, params.reason, 'director', null);
            outcome.registered += 1;
          } else if (row.director === director && row.backend_ref === pilot.backendRef) {
            outcome.alreadyRegistered += 1;
          } else {
            outcome.conflicts.push(pilot.stamp);
          }
        }
        return outcome;
      })
      .immediate();
  }

  async recordHello(hello: PilotHelloRecord): Promise<void> {
    const sql = this.#sql;
    const params = { ...hello, node: JSON.stringify(hello.node) };
    this.#db
      .transaction(() => {
        const row = sql.state.get(hello.id) as StateRow | undefined;
        if (!row) {
          sql.insertHello.run(params);
          sql.addHistory.run(hello.id, hello.at, 'Running', 'connected', 'pilot', null);
          return;
        }
        sql.updateHello.run(params);
        this.#apply(hello.id, row, 'Running', 'connected', 'pilot', hello.at, null, true);
      })
      .immediate();
  }

  async recordBye(id: string, reason: string, at: string): Promise<void> {
    const sql = this.#sql;
    this.#db
      .transaction(() => {
        const row = sql.state.get(id) as StateRow | undefined;
        if (!row) return;
        sql.disconnect.run(at, id);
        this.#apply(id, { ...row, connected: 0 }, 'Done', reason, 'pilot', at, null, true);
      })
      .immediate();
  }

  async recordDisconnect(id: string, at: string): Promise<void> {
    const sql = this.#sql;
    this.#db
      .transaction(() => {
        const row = sql.state.get(id) as StateRow | undefined;
        if (!row || row.connected === 0) return;
        sql.disconnect.run(at, id);
        sql.addHistory.run(id, at, row.status, 'disconnected', 'pilot', null);
      })
      .immediate();
  }

  async applyBackendUpdates(updates: readonly PilotStatusUpdate[]): Promise<UpdateOutcome> {
    const sql = this.#sql;
    return this.#db
      .transaction((): UpdateOutcome => {
        const outcome: UpdateOutcome = { applied: [], unchanged: [], unknown: [] };
        for (const update of updates) {
          const row = sql.state.get(update.stamp) as StateRow | undefined;
          if (!row) {
            outcome.unknown.push(update.stamp);
            continue;
          }
          const statusChanged = this.#apply(
            update.stamp,
            row,
            update.status,
            update.reason,
            'backend',
            update.at,
            update.native,
            false,
          );
          const facts = sql.backendFacts.run({
            stamp: update.stamp,
            native: update.native,
            exitCode: update.exitCode,
            final: FINAL_PILOT_STATUSES.has(update.status) && update.status !== 'Lost' ? 1 : 0,
            untrack: update.untrack ? 1 : 0,
          });
          (statusChanged || (update.untrack && facts.changes > 0) ? outcome.applied : outcome.unchanged).push(
            update.stamp,
          );
        }
        return outcome;
      })
      .immediate();
  }

  /** Applies a status report through the merge rule; records it in the history when it changes anything. */
  #apply(
    id: string,
    row: StateRow,
    status: PilotStatus,
    reason: string,
    source: PilotReportSource,
    at: string,
    native: string | null,
    alwaysRecordConnection: boolean,
  ): boolean {
    const applies = mergePilotStatus(
      { status: row.status, connected: row.connected === 1, backendFinal: row.backend_final === 1 },
      status,
      source,
    );
    if (applies) {
      this.#sql.setStatus.run(status, reason, at, id);
      this.#sql.addHistory.run(id, at, status, reason, source, native);
    } else if (alwaysRecordConnection) {
      // A hello or bye that does not change the status is still part of the pilot's story.
      this.#sql.addHistory.run(id, at, row.status, reason, source, native);
    }
    return applies;
  }

  async getPilot(id: string): Promise<PilotRecord | null> {
    const row = this.#sql.get.get(id) as PilotRow | undefined;
    return row ? pilotFromRow(row) : null;
  }

  async getHistory(id: string): Promise<PilotHistoryEntry[]> {
    return (this.#sql.history.all(id) as Record<string, unknown>[]).map((row) => ({
      at: String(row.at),
      status: row.status as PilotStatus,
      reason: String(row.reason),
      source: row.source as PilotHistoryEntry['source'],
      native: row.native === null ? null : String(row.native),
    }));
  }

  async searchPilots(query: PilotQuery): Promise<PilotPage> {
    const where = new WhereClause()
      .in('id', query.ids)
      .in('vo', query.vos)
      .in('site', query.sites)
      .in('ce', query.ces)
      .in('queue', query.queues)
      .in('status', query.statuses)
      .in('director', query.directors)
      .when('created_at >= ?', query.createdAfter)
      .when('created_at < ?', query.createdBefore);
    if (query.tracked !== undefined) where.raw(query.tracked ? 'tracked = 1' : 'tracked = 0');
    const whereSql = where.sql;
    const params = where.params;
    const total = this.#db
      .prepare(`SELECT count(*) FROM pilots ${whereSql}`)
      .pluck()
      .get(...params) as number;
    const order = `${SORT_COLUMNS[query.sort.field]} ${query.sort.direction === 'desc' ? 'DESC' : 'ASC'}, id ASC`;
    const rows = this.#db
      .prepare(`${SELECT_PILOT} ${whereSql} ORDER BY ${order} LIMIT ? OFFSET ?`)
      .all(...params, query.perPage, (query.page - 1) * query.perPage) as PilotRow[];
    return { total, pilots: rows.map(pilotFromRow) };
  }

  async countActive(keys: readonly QueueKey[]): Promise<Map<string, PilotCounts>> {
    const counts = new Map<string, PilotCounts>();
    for (const key of keys) counts.set(queueKeyOf(key), { waiting: 0, running: 0, unknown: 0 });
    for (const row of this.#sql.activeCounts.all() as (QueueKey & { status: PilotStatus; n: number })[]) {
      const entry = counts.get(queueKeyOf(row));
      if (!entry) continue;
      if (row.status === 'Running') entry.running += row.n;
      else if (row.status === 'Unknown') entry.unknown += row.n;
      else entry.waiting += row.n;
    }
    return counts;
  }

  async storeOutput(id: string, output: PilotOutput, at: string): Promise<boolean> {
    if (!this.#sql.state.get(id)) return false;
    this.#sql.upsertOutput.run(id, output.stdout, output.stderr, output.truncated ? 1 : 0, at);
    return true;
  }

  async getOutput(id: string): Promise<StoredPilotOutput | null> {
    const row = this.#sql.getOutput.get(id) as Record<string, unknown> | undefined;
    if (!row) return null;
    return {
      stdout: String(row.stdout),
      stderr: String(row.stderr),
      truncated: row.truncated === 1,
      fetchedAt: String(row.fetched_at),
    };
  }

  async saveDirectorReport(report: DirectorReport, at: string): Promise<void> {
    this.#sql.upsertReport.run(report.director, JSON.stringify(report), at);
  }

  async directorReports(): Promise<StoredDirectorReport[]> {
    return (this.#sql.reports.all() as Record<string, unknown>[]).map((row) => ({
      report: JSON.parse(String(row.report)) as DirectorReport,
      receivedAt: String(row.received_at),
    }));
  }

  /** While refused, every write fails (SQLITE_READONLY, answered as STORE_UNAVAILABLE): the file is lost. */
  refuseWrites(refuse: boolean): void {
    if (this.#db.open) this.#db.pragma(`query_only = ${refuse ? 'ON' : 'OFF'}`);
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}

interface StateRow {
  status: PilotStatus;
  connected: number;
  backend_final: number;
  vo: string;
  site: string;
  ce: string | null;
  queue: string | null;
  director: string | null;
  backend_ref: string | null;
}
