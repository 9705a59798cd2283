/**
 * Schedules on SQLite: the job store's connection and write batcher, so that a run's jobs, its record
 * and the schedule's move to the next slot commit in one transaction. One process owns the file, so
 * the slot check in `fireSlot` guards against this process's own races (a tick overlapping a pause).
 */
import type Database from 'better-sqlite3';
import { PilothouseError } from '../../../shared/errors.ts';
import type { ScheduleRunView, ScheduleView } from '../../../shared/schedule/schedule.ts';
import type { NewJob, SubmitResult } from '../job-store.ts';
import {
  FINAL_STATUSES_SQL,
  type NewSchedule,
  type ScheduleSelection,
  type ScheduleStore,
  type SlotDecision,
  type SlotOutcome,
  type UnfinishedRunJob,
} from '../schedule-store.ts';
import {
  decideSlotRecord,
  runsFromRows,
  scheduleState,
  unfinishedFromRow,
  type UnfinishedJobRow,
  scheduleFromRow,
  selectionColumns,
  slotRunRecord,
  type ScheduleRow,
} from '../schedule-rows.ts';
import { sandboxChecksumsOf } from '../sandbox-links.ts';
import type { WriteBatcher } from './write-batcher.ts';

export class SqliteScheduleStore implements ScheduleStore {
  readonly #db: Database.Database;
  readonly #writes: WriteBatcher;
  readonly #insertJobs: (jobs: NewJob[], at: string) => SubmitResult;
  readonly #sql;

  constructor(db: Database.Database, writes: WriteBatcher, insertJobs: (jobs: NewJob[], at: string) => SubmitResult) {
    this.#db = db;
    this.#writes = writes;
    this.#insertJobs = insertJobs;
    this.#sql = {
      insert: db.prepare(`
        INSERT INTO schedules (vo, grp, owner, name, cron, time_zone, overlap, catch_up, start_at, end_at, max_runs,
                               state, next_fire_at, jobs, created_at, created_by, updated_at)
        VALUES (@vo, @grp, @owner, @name, @cron, @timeZone, @overlap, @catchUp, @startAt, @endAt, @maxRuns,
                @state, @nextFireAt, @jobs, @at, @by, @at)`),
      linkSandbox: db.prepare('INSERT OR IGNORE INTO schedule_sandboxes (sha256, schedule_id) VALUES (?, ?)'),
      get: db.prepare('SELECT * FROM schedules WHERE id = ?'),
      setPaused: db.prepare(`
        UPDATE schedules SET state = @state, next_fire_at = @nextFireAt, updated_at = @at
        WHERE id = @id AND state != 'ended'`),
      deleteRuns: db.prepare('DELETE FROM schedule_runs WHERE schedule_id = ?'),
      deleteSandboxes: db.prepare('DELETE FROM schedule_sandboxes WHERE schedule_id = ?'),
      delete: db.prepare('DELETE FROM schedules WHERE id = ?'),
      due: db.prepare(
        "SELECT * FROM schedules WHERE state = 'active' AND next_fire_at <= ? ORDER BY next_fire_at, id LIMIT ?",
      ),
      earliest: db
        .prepare("SELECT min(next_fire_at) FROM schedules WHERE state = 'active' AND next_fire_at IS NOT NULL")
        .pluck(),
      unfinished: db.prepare(
        `SELECT id, status, attempt, pilot_id FROM jobs
         WHERE schedule_id = ? AND status NOT IN ${FINAL_STATUSES_SQL} ORDER BY id`,
      ),
      // The slot moves only if it is still the one the caller read, and the schedule still active.
      advance: db.prepare(`
        UPDATE schedules SET next_fire_at = @nextFireAt, last_slot_at = @slotAt, updated_at = @at,
          state = CASE WHEN @nextFireAt IS NULL THEN 'ended' ELSE state END
        WHERE id = @id AND state = 'active' AND next_fire_at = @expected
        RETURNING state`),
      countRun: db
        .prepare(
          `UPDATE schedules SET runs = runs + 1,
             state = CASE WHEN max_runs IS NOT NULL AND runs + 1 >= max_runs THEN 'ended' ELSE state END,
             next_fire_at = CASE WHEN max_runs IS NOT NULL AND runs + 1 >= max_runs THEN NULL ELSE next_fire_at END
           WHERE id = ? RETURNING state`,
        )
        .pluck(),
      insertRun: db.prepare(`
        INSERT INTO schedule_runs (schedule_id, slot_at, fired_at, outcome, reason, missed_slots, job_ids, replaced_job_ids)
        VALUES (@scheduleId, @slotAt, @firedAt, @outcome, @reason, @missedSlots, @jobIds, @replacedJobIds)`),
      runs: db.prepare('SELECT * FROM schedule_runs WHERE schedule_id = ? ORDER BY slot_at DESC LIMIT ?'),
      runJobs: db.prepare(
        `SELECT id, status, schedule_slot FROM jobs
         WHERE schedule_id = ? AND schedule_slot IN (SELECT value FROM json_each(?)) ORDER BY id`,
      ),
    };
  }

  async createSchedule(schedule: NewSchedule): Promise<ScheduleView> {
    return this.#writes.write(() => {
      const id = Number(
        this.#sql.insert.run({
          vo: schedule.ownership.vo,
          grp: schedule.ownership.group,
          owner: schedule.ownership.owner,
          name: schedule.name,
          cron: schedule.cron,
          timeZone: schedule.timeZone,
          overlap: schedule.overlap,
          catchUp: schedule.catchUp,
          startAt: schedule.startAt,
          endAt: schedule.endAt,
          maxRuns: schedule.maxRuns,
          state: scheduleState(false, schedule.nextFireAt),
          nextFireAt: schedule.nextFireAt,
          jobs: JSON.stringify(schedule.jobs),
          at: schedule.at,
          by: schedule.by,
        }).lastInsertRowid,
      );
      for (const sha256 of sandboxChecksumsOf(schedule.jobs)) this.#sql.linkSandbox.run(sha256, id);
      return scheduleFromRow(this.#sql.get.get(id) as ScheduleRow);
    });
  }

  async getSchedule(id: number): Promise<ScheduleView | null> {
    const row = this.#sql.get.get(id) as ScheduleRow | undefined;
    return row ? scheduleFromRow(row) : null;
  }

  async listSchedules(selection: ScheduleSelection, limit: number): Promise<ScheduleView[]> {
    const columns = selectionColumns(selection);
    const where = columns.map(([column]) => `${column} = ?`);
    const params = columns.map(([, value]) => value);
    const rows = this.#db
      .prepare(
        `SELECT * FROM schedules ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
      )
      .all(...params, limit) as ScheduleRow[];
    return rows.map(scheduleFromRow);
  }

  async setSchedulePaused(
    id: number,
    paused: boolean,
    change: { at: string; by: string; nextFireAt: string | null },
  ): Promise<ScheduleView | null> {
    return this.#writes.write(() => {
      this.#sql.setPaused.run({
        id,
        state: scheduleState(paused, change.nextFireAt),
        nextFireAt: change.nextFireAt,
        at: change.at,
      });
      const row = this.#sql.get.get(id) as ScheduleRow | undefined;
      return row ? scheduleFromRow(row) : null;
    });
  }

  async deleteSchedule(id: number): Promise<boolean> {
    return this.#writes.write(() => {
      this.#sql.deleteRuns.run(id);
      this.#sql.deleteSandboxes.run(id);
      return this.#sql.delete.run(id).changes > 0;
    });
  }

  async dueSchedules(at: string, limit: number): Promise<ScheduleView[]> {
    return (this.#sql.due.all(at, limit) as ScheduleRow[]).map(scheduleFromRow);
  }

  async earliestNextFire(): Promise<string | null> {
    return (this.#sql.earliest.get() as string | null) ?? null;
  }

  async unfinishedRunJobs(scheduleId: number): Promise<UnfinishedRunJob[]> {
    return (this.#sql.unfinished.all(scheduleId) as UnfinishedJobRow[]).map(unfinishedFromRow);
  }

  async fireSlot(decision: SlotDecision): Promise<SlotOutcome> {
    return this.#writes.write((): SlotOutcome => {
      const advanced = this.#sql.advance.get({
        id: decision.scheduleId,
        expected: decision.expectedNextFireAt,
        nextFireAt: decision.nextFireAt,
        slotAt: decision.slotAt,
        at: decision.at,
      }) as { state: ScheduleView['state'] } | undefined;
      if (!advanced) return { fired: false };
      const unfinished =
        decision.action === 'submit' && decision.overlap === 'skip'
          ? (this.#sql.unfinished.all(decision.scheduleId) as { id: number; status: string }[])
          : [];
      const record = decideSlotRecord(decision, unfinished[0] ?? null);
      let state = advanced.state;
      let submitted: SubmitResult = { jobIds: [], taskQueueIds: [] };
      if (record.outcome === 'submitted') {
        // A failure to store the jobs (an input sandbox purged) rolls back only this savepoint: the
        // slot is still decided, and its record says why it has no jobs.
        try {
          submitted = this.#db.transaction(() => this.#insertJobs(decision.jobs, decision.at))();
          state = this.#sql.countRun.get(decision.scheduleId) as ScheduleView['state'];
        } catch (error) {
          if (!(error instanceof PilothouseError)) throw error;
          record.outcome = 'failed';
          record.reason = error.message;
        }
      }
      if (record.missedRecord) this.#sql.insertRun.run(record.missedRecord);
      this.#sql.insertRun.run(slotRunRecord(decision, record, submitted.jobIds));
      return { fired: true, outcome: record.outcome, ...submitted, state };
    });
  }

  async scheduleRuns(scheduleId: number, limit: number): Promise<ScheduleRunView[]> {
    const runs = this.#sql.runs.all(scheduleId, limit) as Record<string, unknown>[];
    const jobs = this.#sql.runJobs.all(scheduleId, JSON.stringify(runs.map((row) => row.slot_at))) as {
      id: number;
      status: string;
      schedule_slot: string;
    }[];
    return runsFromRows(runs, jobs);
  }
}
