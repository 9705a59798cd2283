/**
 * Schedules on PostgreSQL, shared by every replica. `fireSlot` moves the schedule's next slot with an
 * UPDATE that names the slot it expects: replicas racing for a slot queue on the row's lock, and under
 * READ COMMITTED the later ones find the slot moved and write nothing. The run's jobs, its record and
 * the move commit together; the primary key of schedule_runs backs this up.
 */
import type pg from 'pg';
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
  type RunRecord,
  type ScheduleRow,
} from '../schedule-rows.ts';
import { sandboxChecksumsOf } from '../sandbox-links.ts';
import { run, withTransaction } from './pg-database.ts';

type InsertJobs = (client: pg.PoolClient, jobs: NewJob[], at: string) => Promise<SubmitResult>;

const UNFINISHED_SQL = `SELECT id, status, attempt, pilot_id FROM jobs
  WHERE schedule_id = $1 AND status NOT IN ${FINAL_STATUSES_SQL} ORDER BY id`;

export class PgScheduleStore implements ScheduleStore {
  readonly #pool: pg.Pool;
  readonly #insertJobs: InsertJobs;

  constructor(pool: pg.Pool, insertJobs: InsertJobs) {
    this.#pool = pool;
    this.#insertJobs = insertJobs;
  }

  async createSchedule(schedule: NewSchedule): Promise<ScheduleView> {
    return withTransaction(this.#pool, async (client) => {
      const inserted = await client.query<ScheduleRow>(
        `INSERT INTO schedules (vo, grp, owner, name, cron, time_zone, overlap, catch_up, start_at, end_at, max_runs,
                                state, next_fire_at, jobs, created_at, created_by, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $15) RETURNING *`,
        [
          schedule.ownership.vo,
          schedule.ownership.group,
          schedule.ownership.owner,
          schedule.name,
          schedule.cron,
          schedule.timeZone,
          schedule.overlap,
          schedule.catchUp,
          schedule.startAt,
          schedule.endAt,
          schedule.maxRuns,
          scheduleState(false, schedule.nextFireAt),
          schedule.nextFireAt,
          JSON.stringify(schedule.jobs),
          schedule.at,
          schedule.by,
        ],
      );
      const row = inserted.rows[0] as ScheduleRow;
      const checksums = sandboxChecksumsOf(schedule.jobs);
      if (checksums.length > 0) {
        await client.query(
          `INSERT INTO schedule_sandboxes (sha256, schedule_id) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING`,
          [checksums, row.id],
        );
      }
      return scheduleFromRow(row);
    });
  }

  async getSchedule(id: number): Promise<ScheduleView | null> {
    const result = await run(() => this.#pool.query<ScheduleRow>('SELECT * FROM schedules WHERE id = $1', [id]));
    const row = result.rows[0];
    return row ? scheduleFromRow(row) : null;
  }

  async listSchedules(selection: ScheduleSelection, limit: number): Promise<ScheduleView[]> {
    const columns = selectionColumns(selection);
    const where = columns.map(([column], index) => `${column} = $${index + 1}`);
    const params: unknown[] = [...columns.map(([, value]) => value), limit];
    const result = await run(() =>
      this.#pool.query<ScheduleRow>(
        `SELECT * FROM schedules ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY id DESC LIMIT $${params.length}`,
        params,
      ),
    );
    return result.rows.map(scheduleFromRow);
  }

  async setSchedulePaused(
    id: number,
    paused: boolean,
    change: { at: string; by: string; nextFireAt: string | null },
  ): Promise<ScheduleView | null> {
    return withTransaction(this.#pool, async (client) => {
      await client.query(
        `UPDATE schedules SET state = $2, next_fire_at = $3, updated_at = $4 WHERE id = $1 AND state != 'ended'`,
        [id, scheduleState(paused, change.nextFireAt), change.nextFireAt, change.at],
      );
      const row = (await client.query<ScheduleRow>('SELECT * FROM schedules WHERE id = $1', [id])).rows[0];
      return row ? scheduleFromRow(row) : null;
    });
  }

  async deleteSchedule(id: number): Promise<boolean> {
    return withTransaction(this.#pool, async (client) => {
      await client.query('DELETE FROM schedule_runs WHERE schedule_id = $1', [id]);
      await client.query('DELETE FROM schedule_sandboxes WHERE schedule_id = $1', [id]);
      return ((await client.query('DELETE FROM schedules WHERE id = $1', [id])).rowCount ?? 0) > 0;
    });
  }

  async dueSchedules(at: string, limit: number): Promise<ScheduleView[]> {
    const result = await run(() =>
      this.#pool.query<ScheduleRow>(
        `SELECT * FROM schedules WHERE state = 'active' AND next_fire_at <= $1 ORDER BY next_fire_at, id LIMIT $2`,
        [at, limit],
      ),
    );
    return result.rows.map(scheduleFromRow);
  }

  async earliestNextFire(): Promise<string | null> {
    const result = await run(() =>
      this.#pool.query<{ at: string | null }>(
        `SELECT min(next_fire_at) AS at FROM schedules WHERE state = 'active' AND next_fire_at IS NOT NULL`,
      ),
    );
    return result.rows[0]?.at ?? null;
  }

  async unfinishedRunJobs(scheduleId: number): Promise<UnfinishedRunJob[]> {
    const result = await run(() => this.#pool.query<UnfinishedJobRow>(UNFINISHED_SQL, [scheduleId]));
    return result.rows.map(unfinishedFromRow);
  }

  async fireSlot(decision: SlotDecision): Promise<SlotOutcome> {
    return withTransaction(this.#pool, async (client): Promise<SlotOutcome> => {
      const advanced = await client.query<{ state: ScheduleView['state'] }>(
        `UPDATE schedules SET next_fire_at = $3, last_slot_at = $4, updated_at = $5,
           state = CASE WHEN $3::text IS NULL THEN 'ended' ELSE state END
         WHERE id = $1 AND state = 'active' AND next_fire_at = $2
         RETURNING state`,
        [decision.scheduleId, decision.expectedNextFireAt, decision.nextFireAt, decision.slotAt, decision.at],
      );
      const moved = advanced.rows[0];
      if (!moved) return { fired: false };
      let state = moved.state;
      const unfinished =
        decision.action === 'submit' && decision.overlap === 'skip'
          ? (await client.query<{ id: string | number; status: string }>(UNFINISHED_SQL, [decision.scheduleId])).rows
          : [];
      const first = unfinished[0];
      const record = decideSlotRecord(decision, first ? { id: Number(first.id), status: first.status } : null);
      let submitted: SubmitResult = { jobIds: [], taskQueueIds: [] };
      if (record.outcome === 'submitted') {
        // A failure to store the jobs (an input sandbox purged) undoes only them: the slot stays decided.
        await client.query('SAVEPOINT run_jobs');
        try {
          submitted = await this.#insertJobs(client, decision.jobs, decision.at);
          const counted = await client.query<{ state: ScheduleView['state'] }>(
            `UPDATE schedules SET runs = runs + 1,
               state = CASE WHEN max_runs IS NOT NULL AND runs + 1 >= max_runs THEN 'ended' ELSE state END,
             next_fire_at = CASE WHEN max_runs IS NOT NULL AND runs + 1 >= max_runs THEN NULL ELSE next_fire_at END
             WHERE id = $1 RETURNING state`,
            [decision.scheduleId],
          );
          state = counted.rows[0]?.state ?? state;
          await client.query('RELEASE SAVEPOINT run_jobs');
        } catch (error) {
          if (!(error instanceof PilothouseError)) throw error;
          await client.query('ROLLBACK TO SAVEPOINT run_jobs');
          record.outcome = 'failed';
          record.reason = error.message;
        }
      }
      if (record.missedRecord) await insertRun(client, record.missedRecord);
      await insertRun(client, slotRunRecord(decision, record, submitted.jobIds));
      return { fired: true, outcome: record.outcome, ...submitted, state };
    });
  }

  async scheduleRuns(scheduleId: number, limit: number): Promise<ScheduleRunView[]> {
    const runs = await run(() =>
      this.#pool.query(`SELECT * FROM schedule_runs WHERE schedule_id = $1 ORDER BY slot_at DESC LIMIT $2`, [
        scheduleId,
        limit,
      ]),
    );
    const jobs = await run(() =>
      this.#pool.query<{ id: string; status: string; schedule_slot: string }>(
        `SELECT id, status, schedule_slot FROM jobs WHERE schedule_id = $1 AND schedule_slot = ANY($2::text[]) ORDER BY id`,
        [scheduleId, runs.rows.map((row) => row.slot_at)],
      ),
    );
    return runsFromRows(runs.rows, jobs.rows);
  }
}

async function insertRun(client: pg.PoolClient, record: RunRecord): Promise<void> {
  await client.query(
    `INSERT INTO schedule_runs (schedule_id, slot_at, fired_at, outcome, reason, missed_slots, job_ids, replaced_job_ids)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [
      record.scheduleId,
      record.slotAt,
      record.firedAt,
      record.outcome,
      record.reason,
      record.missedSlots,
      record.jobIds,
      record.replacedJobIds,
    ],
  );
}
