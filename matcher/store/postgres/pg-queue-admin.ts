/**
 * QueueAdministration and the settings' history on PostgreSQL. A TQ change locks the TQ's row first,
 * so two administrators (or replicas) changing one TQ at once are applied one after the other.
 */
import type pg from 'pg';
import { FINAL_STATUSES, type JobStatus } from '../../../shared/job/status.ts';
import type { StoredSetting, TaskQueueView } from '../job-store.ts';
import {
  PAUSED_MINOR_STATUS,
  WAITING_MINOR_STATUS,
  type AdminChange,
  type PriorityChange,
  type QueueAdministration,
  type TaskQueueChangeResult,
} from '../queue-administration.ts';
import { settingFromRow, type SettingRow } from '../setting-row.ts';
import { TASK_QUEUE_VIEW_SQL, taskQueueFromRow } from '../sqlite/rows.ts';
import { run, withTransaction, type PgQueryable } from './pg-database.ts';

const TQ_BY_ID = `${TASK_QUEUE_VIEW_SQL} WHERE tq.id = $1`;

/** One history row per Waiting job of the TQ: its status as it is, the new minor status when given. */
const NOTE_WAITING = `
  INSERT INTO job_history (job_id, attempt, at, status, minor_status, application_status, source, applied, note)
  SELECT id, attempt, $2, status, coalesce($4, minor_status), application_status, $3, true, $5
  FROM jobs WHERE task_queue_id = $1 AND status = 'Waiting'`;

async function viewOf(client: PgQueryable, id: number): Promise<TaskQueueView | null> {
  const row = (await client.query(TQ_BY_ID, [id])).rows[0] as Record<string, unknown> | undefined;
  return row ? taskQueueFromRow(row) : null;
}

async function lockTaskQueue(client: pg.PoolClient, id: number): Promise<TaskQueueView | null> {
  const locked = await client.query('SELECT id FROM task_queues WHERE id = $1 FOR UPDATE', [id]);
  return locked.rowCount === 0 ? null : viewOf(client, id);
}

export class PgQueueAdmin implements QueueAdministration {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  setTaskQueuePaused(
    id: number,
    pause: { reason: string } | null,
    change: AdminChange,
  ): Promise<TaskQueueChangeResult | null> {
    return withTransaction(this.#pool, async (client) => {
      const before = await lockTaskQueue(client, id);
      if (!before) return null;
      if ((before.paused !== null) === (pause !== null)) return { taskQueue: before, changed: false, jobs: 0 };
      await client.query('UPDATE task_queues SET paused_at = $1, paused_by = $2, pause_reason = $3 WHERE id = $4', [
        pause && change.at,
        pause && change.by,
        pause?.reason ?? null,
        id,
      ]);
      const minorStatus = pause ? PAUSED_MINOR_STATUS : WAITING_MINOR_STATUS;
      const note = pause ? `task queue ${id} paused: ${pause.reason}` : `task queue ${id} resumed`;
      const noted = await client.query(NOTE_WAITING, [id, change.at, change.by, minorStatus, note]);
      await client.query(
        "UPDATE jobs SET minor_status = $1, last_update_at = $2 WHERE task_queue_id = $3 AND status = 'Waiting'",
        [minorStatus, change.at, id],
      );
      return { taskQueue: (await viewOf(client, id)) as TaskQueueView, changed: true, jobs: noted.rowCount ?? 0 };
    });
  }

  setTaskQueueBoost(id: number, boost: number, change: AdminChange): Promise<TaskQueueChangeResult | null> {
    return withTransaction(this.#pool, async (client) => {
      const before = await lockTaskQueue(client, id);
      if (!before) return null;
      if (before.boost === boost) return { taskQueue: before, changed: false, jobs: 0 };
      await client.query('UPDATE task_queues SET boost = $1 WHERE id = $2', [boost, id]);
      const note = `task queue ${id} boost ${before.boost} → ${boost}`;
      const noted = await client.query(NOTE_WAITING, [id, change.at, change.by, null, note]);
      return { taskQueue: (await viewOf(client, id)) as TaskQueueView, changed: true, jobs: noted.rowCount ?? 0 };
    });
  }

  setJobPriority(
    jobIds: readonly number[],
    priority: number,
    change: AdminChange,
  ): Promise<{ changed: PriorityChange[]; taskQueueIds: number[] }> {
    return withTransaction(this.#pool, async (client) => {
      const rows = (
        await client.query<{
          id: number;
          status: JobStatus;
          priority: number;
          attempt: number;
          task_queue_id: number | null;
          minor_status: string;
          application_status: string;
        }>(
          `SELECT id, status, priority, attempt, task_queue_id, minor_status, application_status
           FROM jobs WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE`,
          [[...jobIds]],
        )
      ).rows;
      const changed: PriorityChange[] = [];
      const taskQueueIds = new Set<number>();
      for (const row of rows) {
        const jobId = Number(row.id);
        if (FINAL_STATUSES.has(row.status) || row.priority === priority) continue;
        await client.query('UPDATE jobs SET priority = $1, last_update_at = $2 WHERE id = $3', [
          priority,
          change.at,
          jobId,
        ]);
        await client.query(
          `INSERT INTO job_history (job_id, attempt, at, status, minor_status, application_status, source, applied, note)
           VALUES ($1, $2, $3, $4, $5, $6, $7, true, $8)`,
          [
            jobId,
            row.attempt,
            change.at,
            row.status,
            row.minor_status,
            row.application_status,
            change.by,
            `priority ${row.priority} → ${priority}`,
          ],
        );
        changed.push({ jobId, status: row.status, previous: row.priority, priority });
        if (row.status === 'Waiting' && row.task_queue_id !== null) taskQueueIds.add(Number(row.task_queue_id));
      }
      return { changed, taskQueueIds: [...taskQueueIds] };
    });
  }

  async oldestWaitingJobs(taskQueueIds: readonly number[]): Promise<Map<number, string>> {
    if (taskQueueIds.length === 0) return new Map();
    const rows = (
      await run(() =>
        this.#pool.query<{ id: number; submitted_at: string }>(
          `SELECT tq.id, (SELECT submitted_at FROM jobs WHERE task_queue_id = tq.id AND status = 'Waiting'
                          ORDER BY id LIMIT 1) AS submitted_at
           FROM unnest($1::bigint[]) AS tq(id)`,
          [[...taskQueueIds]],
        ),
      )
    ).rows;
    return new Map(rows.filter((row) => row.submitted_at !== null).map((row) => [Number(row.id), row.submitted_at]));
  }

  putSetting(name: string, value: string, change: { at: string; by: string }): Promise<StoredSetting> {
    return withTransaction(this.#pool, (client) => this.#put(client, name, value, change));
  }

  replaceSetting(
    name: string,
    value: string,
    change: { at: string; by: string },
    expectedVersion: number,
  ): Promise<StoredSetting | null> {
    return withTransaction(this.#pool, async (client) => {
      // The row lock (or, for a first version, the primary key) orders concurrent writers.
      const current = (
        await client.query<{ version: number }>('SELECT version FROM settings WHERE name = $1 FOR UPDATE', [name])
      ).rows[0];
      if (Number(current?.version ?? 0) !== expectedVersion) return null;
      if (expectedVersion === 0) {
        const inserted = await client.query(
          `INSERT INTO settings (name, value, version, updated_at, updated_by) VALUES ($1, $2, 1, $3, $4)
           ON CONFLICT (name) DO NOTHING RETURNING *`,
          [name, value, change.at, change.by],
        );
        const row = inserted.rows[0] as SettingRow | undefined;
        if (!row) return null;
        await this.#log(client, row);
        return settingFromRow(row);
      }
      return this.#put(client, name, value, change);
    });
  }

  async #put(
    client: pg.PoolClient,
    name: string,
    value: string,
    change: { at: string; by: string },
  ): Promise<StoredSetting> {
    const row = (
      await client.query<SettingRow>(
        `INSERT INTO settings (name, value, version, updated_at, updated_by) VALUES ($1, $2, 1, $3, $4)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, version = settings.version + 1,
           updated_at = excluded.updated_at, updated_by = excluded.updated_by
         RETURNING *`,
        [name, value, change.at, change.by],
      )
    ).rows[0] as SettingRow;
    await this.#log(client, row);
    return settingFromRow(row);
  }

  async #log(client: pg.PoolClient, row: SettingRow): Promise<void> {
    await client.query(
      'INSERT INTO setting_history (name, version, value, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)',
      [row.name, row.version, row.value, row.updated_at, row.updated_by],
    );
  }

  async settingHistory(name: string, limit: number): Promise<StoredSetting[]> {
    const rows = (
      await run(() =>
        this.#pool.query<SettingRow>('SELECT * FROM setting_history WHERE name = $1 ORDER BY version DESC LIMIT $2', [
          name,
          limit,
        ]),
      )
    ).rows;
    return rows.map(settingFromRow);
  }
}
