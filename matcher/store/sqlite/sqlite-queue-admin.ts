/**
 * QueueAdministration and the settings' history on SQLite: the job store's connection and its write
 * batcher (a change commits with the claims around it, never beside them on another connection).
 */
import type Database from 'better-sqlite3';
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
import { TASK_QUEUE_VIEW_SQL, taskQueueFromRow } from './rows.ts';
import type { WriteBatcher } from './write-batcher.ts';

const TQ_BY_ID = `${TASK_QUEUE_VIEW_SQL} WHERE tq.id = ?`;

export class SqliteQueueAdmin implements QueueAdministration {
  readonly #writes: WriteBatcher;
  readonly #sql;

  constructor(db: Database.Database, writes: WriteBatcher) {
    this.#writes = writes;
    this.#sql = {
      taskQueue: db.prepare(TQ_BY_ID),
      pause: db.prepare('UPDATE task_queues SET paused_at = ?, paused_by = ?, pause_reason = ? WHERE id = ?'),
      boost: db.prepare('UPDATE task_queues SET boost = ? WHERE id = ?'),
      // One row per Waiting job of the TQ: its status as it is, the new minor status when one is given.
      noteWaiting: db.prepare(`
        INSERT INTO job_history (job_id, attempt, at, status, minor_status, application_status, source, applied, note)
        SELECT id, attempt, @at, status, coalesce(@minorStatus, minor_status), application_status, @by, 1, @note
        FROM jobs WHERE task_queue_id = @id AND status = 'Waiting'`),
      setWaitingMinor: db.prepare(
        "UPDATE jobs SET minor_status = @minorStatus, last_update_at = @at WHERE task_queue_id = @id AND status = 'Waiting'",
      ),
      job: db.prepare(
        'SELECT id, status, priority, attempt, task_queue_id, minor_status, application_status FROM jobs WHERE id = ?',
      ),
      setPriority: db.prepare('UPDATE jobs SET priority = ?, last_update_at = ? WHERE id = ?'),
      noteJob: db.prepare(`
        INSERT INTO job_history (job_id, attempt, at, status, minor_status, application_status, source, applied, note)
        VALUES (@jobId, @attempt, @at, @status, @minorStatus, @applicationStatus, @by, 1, @note)`),
      oldestWaiting: db
        .prepare(
          "SELECT submitted_at FROM jobs WHERE id = (SELECT min(id) FROM jobs WHERE task_queue_id = ? AND status = 'Waiting')",
        )
        .pluck(),
      getSetting: db.prepare('SELECT * FROM settings WHERE name = ?'),
      upsertSetting: db.prepare(
        `INSERT INTO settings (name, value, version, updated_at, updated_by) VALUES (?, ?, 1, ?, ?)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, version = settings.version + 1,
           updated_at = excluded.updated_at, updated_by = excluded.updated_by
         RETURNING *`,
      ),
      logSetting: db.prepare(
        'INSERT INTO setting_history (name, version, value, updated_at, updated_by) VALUES (@name, @version, @value, @updated_at, @updated_by)',
      ),
      settingHistory: db.prepare('SELECT * FROM setting_history WHERE name = ? ORDER BY version DESC LIMIT ?'),
    };
  }

  #view(id: number): TaskQueueView | null {
    const row = this.#sql.taskQueue.get(id) as Record<string, unknown> | undefined;
    return row ? taskQueueFromRow(row) : null;
  }

  setTaskQueuePaused(
    id: number,
    pause: { reason: string } | null,
    change: AdminChange,
  ): Promise<TaskQueueChangeResult | null> {
    return this.#writes.write(() => {
      const before = this.#view(id);
      if (!before) return null;
      if ((before.paused !== null) === (pause !== null)) return { taskQueue: before, changed: false, jobs: 0 };
      const sql = this.#sql;
      sql.pause.run(pause && change.at, pause && change.by, pause?.reason ?? null, id);
      const minorStatus = pause ? PAUSED_MINOR_STATUS : WAITING_MINOR_STATUS;
      const note = pause ? `task queue ${id} paused: ${pause.reason}` : `task queue ${id} resumed`;
      const jobs = sql.noteWaiting.run({ id, at: change.at, by: change.by, minorStatus, note }).changes;
      sql.setWaitingMinor.run({ id, at: change.at, minorStatus });
      return { taskQueue: this.#view(id) as TaskQueueView, changed: true, jobs };
    });
  }

  setTaskQueueBoost(id: number, boost: number, change: AdminChange): Promise<TaskQueueChangeResult | null> {
    return this.#writes.write(() => {
      const before = this.#view(id);
      if (!before) return null;
      if (before.boost === boost) return { taskQueue: before, changed: false, jobs: 0 };
      this.#sql.boost.run(boost, id);
      const note = `task queue ${id} boost ${before.boost} → ${boost}`;
      const jobs = this.#sql.noteWaiting.run({ id, at: change.at, by: change.by, minorStatus: null, note }).changes;
      return { taskQueue: this.#view(id) as TaskQueueView, changed: true, jobs };
    });
  }

  setJobPriority(
    jobIds: readonly number[],
    priority: number,
    change: AdminChange,
  ): Promise<{ changed: PriorityChange[]; taskQueueIds: number[] }> {
    return this.#writes.write(() => {
      const changed: PriorityChange[] = [];
      const taskQueueIds = new Set<number>();
      for (const jobId of jobIds) {
        const row = this.#sql.job.get(jobId) as
          | {
              id: number;
              status: JobStatus;
              priority: number;
              attempt: number;
              task_queue_id: number | null;
              minor_status: string;
              application_status: string;
            }
          | undefined;
        if (!row || FINAL_STATUSES.has(row.status) || row.priority === priority) continue;
        this.#sql.setPriority.run(priority, change.at, jobId);
        this.#sql.noteJob.run({
          jobId,
          attempt: row.attempt,
          at: change.at,
          status: row.status,
          minorStatus: row.minor_status,
          applicationStatus: row.application_status,
          by: change.by,
          note: `priority ${row.priority} → ${priority}`,
        });
        changed.push({ jobId, status: row.status, previous: row.priority, priority });
        if (row.status === 'Waiting' && row.task_queue_id !== null) taskQueueIds.add(row.task_queue_id);
      }
      return { changed, taskQueueIds: [...taskQueueIds] };
    });
  }

  async oldestWaitingJobs(taskQueueIds: readonly number[]): Promise<Map<number, string>> {
    const oldest = new Map<number, string>();
    for (const id of taskQueueIds) {
      const at = this.#sql.oldestWaiting.get(id) as string | undefined;
      if (at !== undefined) oldest.set(id, at);
    }
    return oldest;
  }

  putSetting(name: string, value: string, change: { at: string; by: string }): Promise<StoredSetting> {
    return this.#writes.write(() => this.#put(name, value, change));
  }

  replaceSetting(
    name: string,
    value: string,
    change: { at: string; by: string },
    expectedVersion: number,
  ): Promise<StoredSetting | null> {
    return this.#writes.write(() => {
      const current = this.#sql.getSetting.get(name) as SettingRow | undefined;
      if ((current?.version ?? 0) !== expectedVersion) return null;
      return this.#put(name, value, change);
    });
  }

  #put(name: string, value: string, change: { at: string; by: string }): StoredSetting {
    const row = this.#sql.upsertSetting.get(name, value, change.at, change.by) as SettingRow;
    this.#sql.logSetting.run(row);
    return settingFromRow(row);
  }

  async settingHistory(name: string, limit: number): Promise<StoredSetting[]> {
    return (this.#sql.settingHistory.all(name, limit) as SettingRow[]).map(settingFromRow);
  }
}
