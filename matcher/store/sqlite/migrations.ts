/**
 * SQLite schema, as ordered migrations compiled into the program (nothing reads SQL files at run
 * time). A migration is never edited once released: add a new one.
 */
import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'jobs, task queues, history, commands, pilots, sandboxes',
    sql: `
      CREATE TABLE task_queues (
        id INTEGER PRIMARY KEY,
        tq_key TEXT NOT NULL UNIQUE,
        vo TEXT NOT NULL,
        grp TEXT NOT NULL,
        owner TEXT NOT NULL,
        requirements TEXT NOT NULL,
        waiting_jobs INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
      );
      CREATE INDEX task_queues_with_waiting ON task_queues (vo) WHERE waiting_jobs > 0;

      CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        vo TEXT NOT NULL,
        grp TEXT NOT NULL,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        job_type TEXT NOT NULL,
        priority INTEGER NOT NULL,
        description TEXT NOT NULL,
        task_queue_id INTEGER REFERENCES task_queues (id),
        status TEXT NOT NULL,
        minor_status TEXT NOT NULL DEFAULT '',
        application_status TEXT NOT NULL DEFAULT 'Unknown',
        exit_code INTEGER,
        site TEXT,
        ce TEXT,
        pilot_id TEXT,
        attempt INTEGER NOT NULL DEFAULT 1,
        submitted_at TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        last_update_at TEXT NOT NULL,
        heartbeat_at TEXT,
        cpu_sec REAL,
        rss_mb REAL,
        wall_sec REAL,
        output_sandbox TEXT
      );
      CREATE INDEX jobs_by_status ON jobs (status);
      CREATE INDEX jobs_by_owner ON jobs (vo, owner, status);
      CREATE INDEX jobs_by_site ON jobs (site, status);
      CREATE INDEX jobs_by_pilot ON jobs (pilot_id);

      -- Waiting jobs only: a claim deletes the row (one winner, like DIRAC's tq_Jobs).
      CREATE TABLE tq_jobs (
        job_id INTEGER PRIMARY KEY,
        tq_id INTEGER NOT NULL REFERENCES task_queues (id),
        priority INTEGER NOT NULL
      );
      CREATE INDEX tq_jobs_pick ON tq_jobs (tq_id, priority DESC, job_id);

      CREATE TABLE job_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id INTEGER NOT NULL REFERENCES jobs (id),
        attempt INTEGER NOT NULL,
        at TEXT NOT NULL,
        status TEXT NOT NULL,
        minor_status TEXT NOT NULL,
        application_status TEXT NOT NULL,
        source TEXT NOT NULL,
        applied INTEGER NOT NULL,
        report_key TEXT
      );
      CREATE INDEX job_history_by_job ON job_history (job_id, id);
      CREATE UNIQUE INDEX job_history_report_key ON job_history (job_id, report_key) WHERE report_key IS NOT NULL;

      CREATE TABLE job_commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id INTEGER NOT NULL REFERENCES jobs (id),
        attempt INTEGER NOT NULL,
        command TEXT NOT NULL,
        created_at TEXT NOT NULL,
        sent_at TEXT
      );
      CREATE INDEX job_commands_pending ON job_commands (job_id, attempt) WHERE sent_at IS NULL;

      CREATE TABLE pilots (
        id TEXT PRIMARY KEY,
        vo TEXT NOT NULL,
        site TEXT NOT NULL,
        ce TEXT,
        queue TEXT,
        status TEXT NOT NULL,
        status_reason TEXT NOT NULL DEFAULT '',
        node TEXT,
        pilot_version TEXT,
        connected_at TEXT,
        last_seen_at TEXT,
        jobs_matched INTEGER NOT NULL DEFAULT 0
      );

      CREATE TABLE sandboxes (
        sha256 TEXT PRIMARY KEY,
        size_bytes INTEGER NOT NULL,
        vo TEXT NOT NULL,
        owner TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_access_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'site mask, per-site activity (running limits, matching delays), TQ job order index',
    sql: `
      CREATE TABLE site_mask (
        site TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        reason TEXT NOT NULL,
        changed_by TEXT NOT NULL,
        changed_at TEXT NOT NULL
      );
      CREATE TABLE site_mask_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        site TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL,
        changed_by TEXT NOT NULL,
        changed_at TEXT NOT NULL
      );
      -- Jobs held by pilots per (site, job type), kept in the claim and status transactions, so running
      -- limits hold for every matcher that shares this store.
      CREATE TABLE site_activity (
        site TEXT NOT NULL,
        job_type TEXT NOT NULL,
        running INTEGER NOT NULL DEFAULT 0,
        last_match_at TEXT,
        PRIMARY KEY (site, job_type)
      );
      CREATE INDEX tq_jobs_fifo ON tq_jobs (tq_id, job_id);
    `,
  },
  {
    version: 3,
    name: 'job indexes without status columns: a status change touches one index, not three',
    sql: `
      DROP INDEX jobs_by_owner;
      DROP INDEX jobs_by_site;
      CREATE INDEX jobs_by_owner ON jobs (vo, owner);
      CREATE INDEX jobs_by_site ON jobs (site);
    `,
  },
  {
    version: 4,
    name: 'drop tq_jobs_fifo: task queues are ordered by the job they give next (tq_jobs_pick)',
    sql: `DROP INDEX tq_jobs_fifo;`,
  },
  {
    version: 5,
    name: 'fewer pages written per claim: waiting jobs in a partial index of jobs, history without AUTOINCREMENT',
    // Each page a claim dirties is written to the WAL and later checkpointed; at 870k waiting jobs a
    // claim wrote ~13 pages. Now: no tq_jobs row to delete (the job leaves jobs_waiting when its status
    // changes), no sqlite_sequence row per history insert, and no index entry for a job's NULL site or
    // pilot to delete when it is matched.
    sql: `
      CREATE INDEX jobs_waiting ON jobs (task_queue_id, priority DESC, id) WHERE status = 'Waiting';
      DROP TABLE tq_jobs;

      DROP INDEX jobs_by_site;
      DROP INDEX jobs_by_pilot;
      CREATE INDEX jobs_by_site ON jobs (site) WHERE site IS NOT NULL;
      CREATE INDEX jobs_by_pilot ON jobs (pilot_id) WHERE pilot_id IS NOT NULL;

      CREATE TABLE job_history_v5 (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs (id),
        attempt INTEGER NOT NULL,
        at TEXT NOT NULL,
        status TEXT NOT NULL,
        minor_status TEXT NOT NULL,
        application_status TEXT NOT NULL,
        source TEXT NOT NULL,
        applied INTEGER NOT NULL,
        report_key TEXT
      );
      INSERT INTO job_history_v5 SELECT id, job_id, attempt, at, status, minor_status, application_status, source,
                                         applied, report_key FROM job_history;
      DROP TABLE job_history;
      ALTER TABLE job_history_v5 RENAME TO job_history;
      CREATE INDEX job_history_by_job ON job_history (job_id, id);
      CREATE UNIQUE INDEX job_history_report_key ON job_history (job_id, report_key) WHERE report_key IS NOT NULL;
    `,
  },
  {
    version: 6,
    name: 'rescheduling: a hold time for rescheduled jobs',
    sql: `ALTER TABLE jobs ADD COLUMN hold_until TEXT;`,
  },
  {
    version: 7,
    name: 'settings every matcher applies (the scheduling policy)',
    sql: `
      CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        version INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT NOT NULL
      );
    `,
  },
  {
    version: 8,
    name: 'fair-share usage summed over every matcher',
    sql: `
      CREATE TABLE share_usage (
        scope TEXT NOT NULL,
        entity TEXT NOT NULL,
        usage REAL NOT NULL,
        PRIMARY KEY (scope, entity)
      );
    `,
  },
  {
    version: 9,
    name: 'sandbox bytes per VO (the quota is summed on every upload)',
    sql: `CREATE INDEX sandboxes_vo_size ON sandboxes (vo, size_bytes);`,
  },
  {
    version: 10,
    name: 'job group as a column, and submission time indexed, for searches',
    sql: `
      ALTER TABLE jobs ADD COLUMN job_group TEXT;
      UPDATE jobs SET job_group = json_extract(description, '$.jobGroup')
        WHERE json_extract(description, '$.jobGroup') IS NOT NULL;
      -- "Submitted in the last N hours" is the commonest filter of a monitor: a range on this index.
      CREATE INDEX jobs_by_submission ON jobs (submitted_at);
    `,
  },
  {
    version: 11,
    name: "the last output of each job's payload (std.out and std.err tails)",
    sql: `
      CREATE TABLE job_output_tails (
        job_id INTEGER PRIMARY KEY REFERENCES jobs (id),
        attempt INTEGER NOT NULL,
        stdout TEXT NOT NULL,
        stderr TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 12,
    name: 'which jobs name which sandboxes, so unused sandboxes can be purged',
    sql: `
      CREATE TABLE job_sandboxes (
        sha256 TEXT NOT NULL,
        job_id INTEGER NOT NULL,
        PRIMARY KEY (sha256, job_id)
      ) WITHOUT ROWID;
      CREATE INDEX job_sandboxes_by_job ON job_sandboxes (job_id);
      INSERT OR IGNORE INTO job_sandboxes (sha256, job_id)
        SELECT substr(value, 8), jobs.id FROM jobs, json_each(jobs.description, '$.inputSandbox');
      CREATE INDEX jobs_by_output_sandbox ON jobs (output_sandbox) WHERE output_sandbox IS NOT NULL;
    `,
  },
  {
    version: 13,
    name: 'queue administration: paused and boosted task queues, notes in job histories, a history of settings',
    sql: `
      ALTER TABLE task_queues ADD COLUMN paused_at TEXT;
      ALTER TABLE task_queues ADD COLUMN paused_by TEXT;
      ALTER TABLE task_queues ADD COLUMN pause_reason TEXT;
      ALTER TABLE task_queues ADD COLUMN boost INTEGER NOT NULL DEFAULT 0;
      -- Why an administrator touched a job (a pause, a boost, a new priority): the status stays as it was.
      ALTER TABLE job_history ADD COLUMN note TEXT;
      CREATE TABLE setting_history (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        PRIMARY KEY (name, version)
      );
      INSERT INTO setting_history (name, version, value, updated_at, updated_by)
        SELECT name, version, value, updated_at, updated_by FROM settings;
    `,
  },
  {
    version: 14,
    name: 'jobs by last update: the change feed of the live web monitor reads what changed since a time',
    sql: `CREATE INDEX jobs_by_last_update ON jobs (last_update_at, id);`,
  },
  {
    version: 15,
    name: 'recurring jobs: schedules, what each slot became, and the runs their jobs belong to',
    sql: `
      CREATE TABLE schedules (
        id INTEGER PRIMARY KEY,
        vo TEXT NOT NULL,
        grp TEXT NOT NULL,
        owner TEXT NOT NULL,
        name TEXT,
        cron TEXT NOT NULL,
        time_zone TEXT NOT NULL,
        overlap TEXT NOT NULL,
        catch_up TEXT NOT NULL,
        start_at TEXT,
        end_at TEXT,
        max_runs INTEGER,
        runs INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        next_fire_at TEXT,
        last_slot_at TEXT,
        jobs TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE state = 'active';
      CREATE INDEX schedules_by_owner ON schedules (vo, owner);
      -- One row per slot decided: the primary key is the last word on "once per slot".
      CREATE TABLE schedule_runs (
        schedule_id INTEGER NOT NULL,
        slot_at TEXT NOT NULL,
        fired_at TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        missed_slots INTEGER NOT NULL DEFAULT 0,
        job_ids TEXT NOT NULL,
        replaced_job_ids TEXT NOT NULL,
        PRIMARY KEY (schedule_id, slot_at)
      ) WITHOUT ROWID;
      -- The sandboxes a schedule's runs will name: not purged while the schedule exists.
      CREATE TABLE schedule_sandboxes (
        sha256 TEXT NOT NULL,
        schedule_id INTEGER NOT NULL,
        PRIMARY KEY (sha256, schedule_id)
      ) WITHOUT ROWID;
      ALTER TABLE jobs ADD COLUMN schedule_id INTEGER;
      ALTER TABLE jobs ADD COLUMN schedule_slot TEXT;
      CREATE INDEX jobs_by_schedule ON jobs (schedule_id, status) WHERE schedule_id IS NOT NULL;
    `,
  },
];

/**
 * Applies the migrations not yet recorded in `table`, each in its own `BEGIN IMMEDIATE` transaction
 * that checks again whether it was applied: two processes opening the same file at once (a matcher
 * and a CLI tool) cannot apply one twice. Every store keeps its own table, so stores evolve apart.
 */
export function applyMigrations(db: Database.Database, table: string, migrations: readonly Migration[]): void {
  db.exec(
    `CREATE TABLE IF NOT EXISTS ${table} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
  );
  const isApplied = db.prepare(`SELECT 1 FROM ${table} WHERE version = ?`).pluck();
  const record = db.prepare(`INSERT INTO ${table} (version, name, applied_at) VALUES (?, ?, ?)`);
  for (const migration of migrations) {
    if (isApplied.get(migration.version)) continue;
    db.transaction(() => {
      if (isApplied.get(migration.version)) return;
      db.exec(migration.sql);
      record.run(migration.version, migration.name, new Date().toISOString());
    }).immediate();
  }
}
