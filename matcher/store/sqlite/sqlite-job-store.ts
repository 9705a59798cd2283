/**
 * JobStore on SQLite (better-sqlite3, WAL): the embedded default. better-sqlite3 is synchronous, so a
 * transaction runs to completion without interleaving inside this process; `BEGIN IMMEDIATE` makes
 * claims safe against other processes that open the same file.
 */
import Database from 'better-sqlite3';
import { PilothouseError } from '../../../shared/errors.ts';
import { ACTIVE_STATUSES, RESCHEDULABLE_FINAL_STATUSES, type JobStatus } from '../../../shared/job/status.ts';
import { foldStatusChange, planStatusReport, type StatusRowChange } from '../status-plan.ts';
import type { JobHistoryEntry, JobStatusReport, JobView } from '../../../shared/job/model.ts';
import type { JobCommand, OutputTail } from '../../../shared/protocol/messages.ts';
import type {
  ClaimBatchResult,
  ClaimRequest,
  ClaimResult,
  SiteMaskEntry,
  SubmitResult,
  TaskQueueStats,
  HeartbeatSample,
  HeldJob,
  JobCount,
  JobPage,
  JobQuery,
  JobSelection,
  JobStore,
  NewJob,
  RescheduleOutcome,
  RescheduleRequest,
  SandboxRecord,
  StatusOutcome,
  PurgeRequest,
  StoredOutputTail,
  TaskQueueView,
  ShareUsage,
  StoredSetting,
  ReportingPilot,
  KeyedStatusReport,
} from '../job-store.ts';
import { assertReportingPilot, claimOfOne, MAX_SUMMARY_GROUPS, PURGED_FINAL_STATUSES } from '../job-store.ts';
import { inputSandboxesOf, sandboxGone, SHA256_PREFIX } from '../sandbox-links.ts';
import { settingFromRow, type SettingRow } from '../setting-row.ts';
import { PAUSED_MINOR_STATUS } from '../queue-administration.ts';
import { SqliteScheduleStore } from './sqlite-schedule-store.ts';
import { SqliteQueueAdmin } from './sqlite-queue-admin.ts';
import { applyMigrations, SQLITE_MIGRATIONS } from './migrations.ts';
import { WriteBatcher } from './write-batcher.ts';
import {
  addKeysetCondition,
  JOB_COLUMN_SQL,
  orderBySql,
  selectionWhere,
  summaryGroup,
  SQLITE_DIALECT,
} from '../job-search-sql.ts';
import type { JobColumn } from '../../../shared/job/job-search.ts';
import { openSqliteConnection } from './open-database.ts';
import type { WriteGate } from './wal-checkpointer.ts';
import {
  historyFromRow,
  jobFromRow,
  outputTailFromRow,
  TASK_QUEUE_VIEW_SQL,
  taskQueueFromRow,
  type JobRow,
} from './rows.ts';

export interface SqliteJobStoreOptions {
  /** File path, or ':memory:'. */
  path: string;
  /** False when a WalCheckpointer runs for the file in this process (see openSqliteConnection). */
  autoCheckpoint?: boolean;
  /** Told how long each group commit took, in seconds (for /metrics). */
  onCommit?: (seconds: number) => void;
}

export function openSqliteJobStore(options: SqliteJobStoreOptions): SqliteJobStore {
  const db = openSqliteConnection({
    path: options.path,
    ...(options.autoCheckpoint === undefined ? {} : { autoCheckpoint: options.autoCheckpoint }),
    // A claim touches index pages spread over a large file (870k waiting jobs ≈ 1 GB with history):
    // keep them in SQLite's own cache instead of re-reading them through syscalls.
    cacheMiB: 128,
    mmapBytes: 256 * 1024 * 1024,
  });
  db.pragma('foreign_keys = ON');
  migrateJobStore(db);
  return new SqliteJobStore(db, options.onCommit);
}

/** Brings the file to the job store's newest schema (other stores on the same file build on it). */
export function migrateJobStore(db: Database.Database): void {
  applyMigrations(db, 'schema_migrations', SQLITE_MIGRATIONS);
}

/** Finished jobs a user may run again (DIRAC: reschedule from Failed, Killed, Done). */

/** The columns of a job a status report reads (statusRow). */
type StatusRow = Pick<
  JobRow,
  | 'status'
  | 'minor_status'
  | 'application_status'
  | 'attempt'
  | 'task_queue_id'
  | 'site'
  | 'job_type'
  | 'pilot_id'
  | 'vo'
>;

export class SqliteJobStore implements JobStore {
  readonly appliesWritesInOrder = true;
  readonly #db: Database.Database;
  readonly #sql;
  readonly #writes: WriteBatcher;
  readonly queueAdmin: SqliteQueueAdmin;
  readonly schedules: SqliteScheduleStore;

  constructor(db: Database.Database, onCommit?: (seconds: number) => void) {
    this.#db = db;
    this.#writes = new WriteBatcher(db, onCommit);
    this.queueAdmin = new SqliteQueueAdmin(db, this.#writes);
    this.schedules = new SqliteScheduleStore(db, this.#writes, (jobs, at) => this.#insertJobs(jobs, at));
    this.#sql = {
      findTq: db.prepare('SELECT id FROM task_queues WHERE tq_key = ?').pluck(),
      isPaused: db.prepare('SELECT paused_at IS NOT NULL FROM task_queues WHERE id = ?').pluck(),
      // Jobs just filed into a paused TQ wait with the minor status that says so, in their history too.
      markPausedSubmissions: db.prepare(
        "UPDATE jobs SET minor_status = @minorStatus WHERE task_queue_id = @tqId AND status = 'Waiting' AND id >= @firstId",
      ),
      markPausedHistory: db.prepare(`
        UPDATE job_history SET minor_status = @minorStatus
        WHERE status = 'Waiting' AND job_id IN
          (SELECT id FROM jobs WHERE task_queue_id = @tqId AND status = 'Waiting' AND id >= @firstId)`),
      insertTq: db.prepare(
        'INSERT INTO task_queues (tq_key, vo, grp, owner, requirements, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      insertJob: db.prepare(`
        INSERT INTO jobs (vo, grp, owner, name, job_type, priority, description, task_queue_id, status, minor_status,
                          submitted_at, last_update_at, job_group, schedule_id, schedule_slot)
        VALUES (@vo, @grp, @owner, @name, @jobType, @priority, @description, @tqId, 'Waiting', 'Pilot Agent Submission',
                @at, @at, @jobGroup, @scheduleId, @scheduleSlot)`),
      // A row whose report key is recorded already (a replayed report) is refused by the key's index:
      // `changes` is then 0. Rows without a key always go in.
      insertHistory: db.prepare(`
        INSERT INTO job_history (job_id, attempt, at, status, minor_status, application_status, source, applied, report_key)
        VALUES (@jobId, @attempt, @at, @status, @minorStatus, @applicationStatus, @source, @applied, @reportKey)
        ON CONFLICT (job_id, report_key) WHERE report_key IS NOT NULL DO NOTHING`),
      countWaiting: db.prepare('UPDATE task_queues SET waiting_jobs = waiting_jobs + ? WHERE id = ?'),
      getJob: db.prepare('SELECT * FROM jobs WHERE id = ?'),
      // What a status report needs of its job, without the description (the widest column).
      statusRow: db.prepare(
        `SELECT status, minor_status, application_status, attempt, task_queue_id, site, job_type, pilot_id, vo
         FROM jobs WHERE id = ?`,
      ),
      history: db.prepare('SELECT * FROM job_history WHERE job_id = ? ORDER BY id'),
      // The claim itself: the TQ's next job (highest priority, then oldest; one seek of jobs_waiting)
      // becomes Matched, which also takes it out of jobs_waiting; a paused TQ gives none (checked in the
      // same statement, so a pause made by another replica holds before this one's index hears of it).
      claimNext: db.prepare(`
        UPDATE jobs SET status = 'Matched', minor_status = 'Assigned', application_status = 'Unknown',
                        site = @site, ce = @ce, pilot_id = @pilotId, last_update_at = @at
        WHERE id = (SELECT id FROM jobs WHERE task_queue_id = @taskQueueId AND status = 'Waiting'
                      AND NOT EXISTS (SELECT 1 FROM task_queues WHERE id = @taskQueueId AND paused_at IS NOT NULL)
                    ORDER BY priority DESC, id LIMIT 1)
        RETURNING *`),
      waitingOf: db.prepare('SELECT waiting_jobs FROM task_queues WHERE id = ?').pluck(),
      // The job a TQ gives next (highest priority, then oldest): one seek of jobs_waiting.
      head: db.prepare(
        "SELECT priority, id AS job_id FROM jobs WHERE task_queue_id = ? AND status = 'Waiting' ORDER BY priority DESC, id LIMIT 1",
      ),
      countWaitingReturning: db
        .prepare('UPDATE task_queues SET waiting_jobs = waiting_jobs + ? WHERE id = ? RETURNING waiting_jobs')
        .pluck(),
      activity: db.prepare('SELECT running, last_match_at FROM site_activity WHERE site = ? AND job_type = ?'),
      activityMatched: db.prepare(`
        INSERT INTO site_activity (site, job_type, running, last_match_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (site, job_type) DO UPDATE SET running = running + excluded.running, last_match_at = excluded.last_match_at`),
      activityReleased: db.prepare(
        'UPDATE site_activity SET running = max(0, running - 1) WHERE site = ? AND job_type = ?',
      ),
      runningAtSite: db.prepare('SELECT job_type, running FROM site_activity WHERE site = ? AND running > 0'),
      upsertSiteMask: db.prepare(`
        INSERT INTO site_mask (site, status, reason, changed_by, changed_at) VALUES (@site, @status, @reason, @changedBy, @changedAt)
        ON CONFLICT (site) DO UPDATE SET status = excluded.status, reason = excluded.reason,
          changed_by = excluded.changed_by, changed_at = excluded.changed_at`),
      logSiteMask: db.prepare(`
        INSERT INTO site_mask_log (site, status, reason, changed_by, changed_at) VALUES (@site, @status, @reason, @changedBy, @changedAt)`),
      siteMask: db.prepare('SELECT * FROM site_mask ORDER BY site'),
      getSetting: db.prepare('SELECT * FROM settings WHERE name = ?'),
      addShareUsage: db.prepare(
        `INSERT INTO share_usage (scope, entity, usage) VALUES (@scope, @entity, @usage)
         ON CONFLICT (scope, entity) DO UPDATE SET usage = share_usage.usage + excluded.usage`,
      ),
      shareUsage: db.prepare('SELECT scope, entity, usage FROM share_usage'),
      taskQueues: db.prepare(`${TASK_QUEUE_VIEW_SQL} WHERE tq.waiting_jobs > 0 ORDER BY tq.id`),
      taskQueuesOfVo: db.prepare(`${TASK_QUEUE_VIEW_SQL} WHERE tq.waiting_jobs > 0 AND tq.vo = ? ORDER BY tq.id`),
      taskQueuesAfter: db.prepare(
        `${TASK_QUEUE_VIEW_SQL} WHERE tq.waiting_jobs > 0 AND tq.id > ? ORDER BY tq.id LIMIT ?`,
      ),
      taskQueue: db.prepare(`${TASK_QUEUE_VIEW_SQL} WHERE tq.id = ?`),
      markStalled: db.prepare("UPDATE jobs SET status = 'Stalled' WHERE id = ?"),
      startNextAttempt: db.prepare(`
        UPDATE jobs SET status = 'Rescheduled', minor_status = @reason, application_status = 'Unknown',
          attempt = attempt + 1, site = NULL, ce = NULL, pilot_id = NULL, exit_code = NULL, output_sandbox = NULL,
          started_at = NULL, ended_at = NULL, heartbeat_at = NULL, cpu_sec = NULL, rss_mb = NULL, wall_sec = NULL,
          hold_until = @holdUntil, last_update_at = @at
        WHERE id = @jobId`),
      heldOver: db.prepare(
        "SELECT id, attempt, task_queue_id FROM jobs WHERE status = 'Rescheduled' AND hold_until <= ? ORDER BY id",
      ),
      backToWaiting: db.prepare(`
        UPDATE jobs SET status = 'Waiting', minor_status = 'Job Rescheduled', hold_until = NULL, last_update_at = @at
        WHERE id = @jobId`),
      insertHeartbeat: db.prepare(
        `UPDATE jobs SET heartbeat_at = @at, cpu_sec = @cpuSec, rss_mb = @rssMB, wall_sec = @wallSec
           WHERE id = @jobId AND attempt = @attempt RETURNING status, minor_status`,
      ),
      upsertOutputTail: db.prepare(`
        INSERT INTO job_output_tails (job_id, attempt, stdout, stderr, updated_at)
        SELECT id, attempt, @stdout, @stderr, @at FROM jobs
        WHERE id = @jobId AND attempt = @attempt AND (@pilotId IS NULL OR (pilot_id = @pilotId AND vo = @vo))
        ON CONFLICT (job_id) DO UPDATE SET attempt = excluded.attempt, stdout = excluded.stdout,
          stderr = excluded.stderr, updated_at = excluded.updated_at`),
      outputTail: db.prepare('SELECT * FROM job_output_tails WHERE job_id = ?'),
      pendingCommands: db.prepare(
        'SELECT id, command FROM job_commands WHERE job_id = ? AND attempt = ? AND sent_at IS NULL ORDER BY id',
      ),
      markCommandSent: db.prepare('UPDATE job_commands SET sent_at = ? WHERE id = ?'),
      insertCommand: db.prepare('INSERT INTO job_commands (job_id, attempt, command, created_at) VALUES (?, ?, ?, ?)'),
      insertSandbox: db.prepare(`
        INSERT INTO sandboxes (sha256, size_bytes, vo, owner, created_at, last_access_at)
        VALUES (@sha256, @sizeBytes, @vo, @owner, @createdAt, @createdAt)
        ON CONFLICT (sha256) DO UPDATE SET last_access_at = excluded.last_access_at`),
      getSandbox: db.prepare('SELECT * FROM sandboxes WHERE sha256 = ?'),
      touchSandbox: db.prepare('UPDATE sandboxes SET last_access_at = ? WHERE sha256 = ?'),
      linkSandbox: db.prepare('INSERT OR IGNORE INTO job_sandboxes (sha256, job_id) VALUES (?, ?)'),
      sandboxBytesOfVo: db.prepare('SELECT coalesce(sum(size_bytes), 0) FROM sandboxes WHERE vo = ?').pluck(),
      // One StatusRowChange (status-plan.ts): the fold of one or several applied reports.
      applyStatus: db.prepare(`
        UPDATE jobs SET status = @status, minor_status = @minorStatus, application_status = @applicationStatus,
          exit_code = coalesce(@exitCode, exit_code), output_sandbox = coalesce(@outputSandbox, output_sandbox),
          started_at = coalesce(started_at, @startedAt), ended_at = coalesce(ended_at, @endedAt),
          heartbeat_at = coalesce(@heartbeatAt, heartbeat_at), last_update_at = @at
        WHERE id = @jobId`),
    };
  }

  async submitJobs(jobs: NewJob[], at: string): Promise<SubmitResult> {
    return this.#db.transaction(() => this.#insertJobs(jobs, at)).immediate();
  }

  /** Stores jobs inside the caller's transaction (a submission, or a schedule's run). */
  #insertJobs(jobs: NewJob[], at: string): SubmitResult {
    const sql = this.#sql;
    // Each input sandbox is marked used (a purge that got there first makes the submission fail whole).
    for (const sha256 of inputSandboxesOf(jobs)) {
      if (sql.touchSandbox.run(at, sha256).changes === 0) throw sandboxGone(sha256);
    }
    const tqIds = new Map<string, number>();
    const ids: number[] = [];
    for (const job of jobs) {
      const tq = job.taskQueue;
      let tqId = tqIds.get(tq.key) ?? (sql.findTq.get(tq.key) as number | undefined);
      if (tqId === undefined) {
        tqId = Number(
          sql.insertTq.run(tq.key, tq.vo, tq.group, tq.owner, JSON.stringify(tq.requirements), at).lastInsertRowid,
        );
      }
      tqIds.set(tq.key, tqId);
      const jobId = Number(
        sql.insertJob.run({
          vo: job.ownership.vo,
          grp: job.ownership.group,
          owner: job.ownership.owner,
          name: job.description.name,
          jobType: job.description.jobType,
          priority: job.description.priority,
          description: JSON.stringify(job.description),
          tqId,
          at,
          jobGroup: job.description.jobGroup ?? null,
          scheduleId: job.schedule?.id ?? null,
          scheduleSlot: job.schedule?.slotAt ?? null,
        }).lastInsertRowid,
      );
      for (const ref of job.description.inputSandbox) sql.linkSandbox.run(ref.slice(SHA256_PREFIX.length), jobId);
      const history = (status: JobStatus, minorStatus: string, source: string): void => {
        sql.insertHistory.run({
          jobId,
          attempt: 1,
          at,
          status,
          minorStatus,
          applicationStatus: 'Unknown',
          source,
          applied: 1,
          reportKey: null,
        });
      };
      history('Received', 'Job accepted', 'JobManager');
      history('Checking', 'JobSanity', 'JobSanity');
      history('Waiting', 'Pilot Agent Submission', 'JobScheduling');
      sql.countWaiting.run(1, tqId);
      ids.push(jobId);
    }
    const firstId = ids[0];
    for (const tqId of new Set(tqIds.values())) {
      if (firstId === undefined || sql.isPaused.get(tqId) !== 1) continue;
      sql.markPausedHistory.run({ minorStatus: PAUSED_MINOR_STATUS, tqId, firstId });
      sql.markPausedSubmissions.run({ minorStatus: PAUSED_MINOR_STATUS, tqId, firstId });
    }
    return { jobIds: ids, taskQueueIds: [...new Set(tqIds.values())] };
  }

  async getJob(id: number): Promise<JobView | null> {
    const row = this.#sql.getJob.get(id) as JobRow | undefined;
    return row ? jobFromRow(row) : null;
  }

  async getJobHistory(id: number): Promise<JobHistoryEntry[]> {
    return this.#sql.history.all(id).map((row) => historyFromRow(row as Record<string, unknown>));
  }

  async searchJobs(query: JobQuery): Promise<JobPage> {
    const where = selectionWhere(query, SQLITE_DIALECT);
    const total =
      query.countTotal === false
        ? null
        : (this.#db
            .prepare(`SELECT count(*) FROM jobs ${where.sql}`)
            .pluck()
            .get(...where.params) as number);
    addKeysetCondition(where, query, SQLITE_DIALECT);
    const offset = query.after === undefined ? (query.page - 1) * query.perPage : 0;
    const rows = this.#db
      .prepare(`SELECT * FROM jobs ${where.sql} ORDER BY ${orderBySql(query.sort, SQLITE_DIALECT)} LIMIT ? OFFSET ?`)
      .all(...where.params, query.perPage, offset) as JobRow[];
    return { total, jobs: rows.map(jobFromRow) };
  }

  async summarizeJobs(selection: JobSelection, groupBy: readonly JobColumn[]): Promise<JobCount[]> {
    const where = selectionWhere(selection, SQLITE_DIALECT);
    const columns = groupBy.map((column) => JOB_COLUMN_SQL[column]);
    const rows = this.#db
      .prepare(
        `SELECT ${columns.map((c, i) => `${c} AS g${i}`).join(', ')}, count(*) AS n FROM jobs ${where.sql}
         GROUP BY ${columns.join(', ')} ORDER BY n DESC LIMIT ${MAX_SUMMARY_GROUPS}`,
      )
      .all(...where.params) as Record<string, string | number | null>[];
    return rows.map((row) => summaryGroup(row, groupBy));
  }

  async listTaskQueuesAfter(afterId: number, limit: number): Promise<TaskQueueView[]> {
    return (this.#sql.taskQueuesAfter.all(afterId, limit) as Record<string, unknown>[]).map((row) =>
      taskQueueFromRow(row),
    );
  }

  async listTaskQueues(filter: { vo?: string }): Promise<TaskQueueView[]> {
    const rows = filter.vo === undefined ? this.#sql.taskQueues.all() : this.#sql.taskQueuesOfVo.all(filter.vo);
    return rows.map((row) => taskQueueFromRow(row as Record<string, unknown>));
  }

  async getTaskQueue(id: number): Promise<TaskQueueView | null> {
    const row = this.#sql.taskQueue.get(id) as Record<string, unknown> | undefined;
    return row ? taskQueueFromRow(row) : null;
  }

  async claimFromTaskQueue(taskQueueId: number, claim: ClaimRequest): Promise<ClaimResult> {
    return this.#writes.write(() => claimOfOne(this.#claimJobs(taskQueueId, claim, 1)));
  }

  async claimJobsFromTaskQueue(taskQueueId: number, claim: ClaimRequest, count: number): Promise<ClaimBatchResult> {
    return this.#writes.write(() => this.#claimJobs(taskQueueId, claim, count));
  }

  /** Inside a write: up to `count` of the TQ's next jobs become Matched (one when a limit applies). */
  #claimJobs(taskQueueId: number, claim: ClaimRequest, count: number): ClaimBatchResult {
    const sql = this.#sql;
    const limited = claim.maxRunning !== null || claim.matchingDelaySec !== null;
    if (limited) {
      const activity = sql.activity.get(claim.site, claim.jobType) as
        { running: number; last_match_at: string | null } | undefined;
      if (claim.maxRunning !== null && (activity?.running ?? 0) >= claim.maxRunning) {
        return { jobs: [], reason: 'running-limit', taskQueue: this.#tqStats(taskQueueId) };
      }
      if (
        claim.matchingDelaySec !== null &&
        activity?.last_match_at &&
        Date.parse(claim.at) - Date.parse(activity.last_match_at) < claim.matchingDelaySec * 1000
      ) {
        return { jobs: [], reason: 'matching-delay', taskQueue: this.#tqStats(taskQueueId) };
      }
    }
    const take = limited ? 1 : Math.max(1, Math.floor(count));
    const params = { taskQueueId, site: claim.site, ce: claim.ce, pilotId: claim.pilotId, at: claim.at };
    // The TQ's next job, `take` times over: each one seek of jobs_waiting (measured: one
    // `id IN (… LIMIT n)` statement costs more per job than n of these, within one write).
    const rows: JobRow[] = [];
    while (rows.length < take) {
      const row = sql.claimNext.get(params) as JobRow | undefined;
      if (row === undefined) break;
      rows.push(row);
    }
    if (rows.length === 0) {
      // Nothing taken: the TQ is empty, or paused (another replica's pause the index had not heard of).
      if (sql.isPaused.get(taskQueueId) === 1) {
        return { jobs: [], reason: 'paused', taskQueue: { ...this.#tqStats(taskQueueId), paused: true } };
      }
      return { jobs: [], reason: 'empty', taskQueue: this.#tqStats(taskQueueId) };
    }
    const waitingJobs = sql.countWaitingReturning.get(-rows.length, taskQueueId) as number;
    for (const row of rows) {
      sql.insertHistory.run({
        jobId: row.id,
        attempt: row.attempt,
        at: claim.at,
        status: 'Matched',
        minorStatus: 'Assigned',
        applicationStatus: 'Unknown',
        source: 'Matcher',
        applied: 1,
        reportKey: null,
      });
    }
    // The job type is part of a TQ's definition: every job taken here counts for the same one.
    sql.activityMatched.run(claim.site, (rows[0] as JobRow).job_type, rows.length, claim.at);
    return { jobs: rows.map(jobFromRow), taskQueue: this.#tqStats(taskQueueId, waitingJobs) };
  }

  /** A TQ's figures after a claim; the waiting count is passed when the claim already knows it. */
  #tqStats(id: number, waitingJobs?: number): TaskQueueStats {
    const head = this.#sql.head.get(id) as { priority: number; job_id: number } | undefined;
    return {
      id,
      waitingJobs: waitingJobs ?? (this.#sql.waitingOf.get(id) as number | undefined) ?? 0,
      topPriority: head?.priority ?? 0,
      nextJobId: head?.job_id ?? null,
    };
  }

  async runningAtSite(site: string): Promise<Record<string, number>> {
    const rows = this.#sql.runningAtSite.all(site) as { job_type: string; running: number }[];
    return Object.fromEntries(rows.map((row) => [row.job_type, row.running]));
  }

  async setSiteStatus(entry: SiteMaskEntry): Promise<void> {
    this.#db.transaction(() => {
      this.#sql.upsertSiteMask.run(entry);
      this.#sql.logSiteMask.run(entry);
    })();
  }

  async siteMask(): Promise<SiteMaskEntry[]> {
    return (this.#sql.siteMask.all() as Record<string, string>[]).map((row) => ({
      site: String(row.site),
      status: row.status as SiteMaskEntry['status'],
      reason: String(row.reason),
      changedBy: String(row.changed_by),
      changedAt: String(row.changed_at),
    }));
  }

  async getSetting(name: string): Promise<StoredSetting | null> {
    const row = this.#sql.getSetting.get(name) as SettingRow | undefined;
    return row ? settingFromRow(row) : null;
  }

  async addShareUsage(deltas: readonly ShareUsage[]): Promise<ShareUsage[]> {
    return this.#writes.write(() => {
      for (const delta of deltas) this.#sql.addShareUsage.run(delta);
      return this.#sql.shareUsage.all() as ShareUsage[];
    });
  }

  async createSetting(name: string, value: string, change: { at: string; by: string }): Promise<StoredSetting> {
    const created = await this.queueAdmin.replaceSetting(name, value, change, 0);
    return created ?? ((await this.getSetting(name)) as StoredSetting);
  }

  putSetting(name: string, value: string, change: { at: string; by: string }): Promise<StoredSetting> {
    return this.queueAdmin.putSetting(name, value, change);
  }

  replaceSetting(
    name: string,
    value: string,
    change: { at: string; by: string },
    expectedVersion: number,
  ): Promise<StoredSetting | null> {
    return this.queueAdmin.replaceSetting(name, value, change, expectedVersion);
  }

  settingHistory(name: string, limit: number): Promise<StoredSetting[]> {
    return this.queueAdmin.settingHistory(name, limit);
  }

  async reportStatus(
    jobId: number,
    attempt: number,
    report: JobStatusReport,
    reportKey?: string,
    heldBy?: ReportingPilot,
  ): Promise<StatusOutcome> {
    const outcomes = await this.reportStatuses(jobId, attempt, [{ report, reportKey }], heldBy);
    return outcomes[0] as StatusOutcome;
  }

  async reportStatuses(
    jobId: number,
    attempt: number,
    reports: readonly KeyedStatusReport[],
    heldBy?: ReportingPilot,
  ): Promise<StatusOutcome[]> {
    return this.#writes.write(() => this.#reportStatusesSync(jobId, attempt, reports, heldBy));
  }

  #reportOneSync(jobId: number, attempt: number, report: JobStatusReport): StatusOutcome {
    return this.#reportStatusesSync(jobId, attempt, [{ report }])[0] as StatusOutcome;
  }

  /** One read of the row, a history row per report, and at most one update of the row for them all. */
  #reportStatusesSync(
    jobId: number,
    attempt: number,
    reports: readonly KeyedStatusReport[],
    heldBy?: ReportingPilot,
  ): StatusOutcome[] {
    const sql = this.#sql;
    const row = sql.statusRow.get(jobId) as StatusRow | undefined;
    if (!row) throw new PilothouseError('JOB_NOT_FOUND', `job ${jobId} does not exist`, { jobId });
    assertReportingPilot(jobId, row, heldBy);
    if (row.attempt !== attempt) {
      throw new PilothouseError('ATTEMPT_MISMATCH', `job ${jobId} is at attempt ${row.attempt}, not ${attempt}`, {
        jobId,
        attempt: row.attempt,
      });
    }
    let current = {
      status: row.status as JobStatus,
      minorStatus: row.minor_status,
      applicationStatus: row.application_status,
    };
    let change: StatusRowChange | null = null;
    const outcomes: StatusOutcome[] = [];
    for (const { report, reportKey } of reports) {
      const plan = planStatusReport(current, report);
      // A report whose key is recorded already is a replay: its row is refused.
      const recorded = sql.insertHistory.run({
        jobId,
        attempt,
        at: report.at,
        status: plan.next,
        minorStatus: plan.minorStatus,
        applicationStatus: plan.applicationStatus,
        source: plan.source,
        applied: plan.applied ? 1 : 0,
        reportKey: reportKey ?? null,
      }).changes;
      if (recorded === 0 || !plan.applied) {
        outcomes.push({ applied: false, status: current.status, duplicate: recorded === 0 });
        continue;
      }
      // Leaving Waiting takes the job out of jobs_waiting (the update below); its TQ counts one less.
      if (plan.leavesWaiting && row.task_queue_id !== null) sql.countWaiting.run(-1, row.task_queue_id);
      if (plan.releasesSite && row.site !== null) sql.activityReleased.run(row.site, row.job_type);
      change = foldStatusChange(change, plan, report);
      current = { status: plan.next, minorStatus: plan.minorStatus, applicationStatus: plan.applicationStatus };
      outcomes.push({ applied: true, status: plan.next, duplicate: false });
    }
    if (change !== null) sql.applyStatus.run({ jobId, ...change });
    return outcomes;
  }

  async killJob(jobId: number, at: string, source: string): Promise<StatusOutcome & { commandQueued: boolean }> {
    return this.#writes.write(() => {
      const row = this.#sql.getJob.get(jobId) as JobRow | undefined;
      if (!row) throw new PilothouseError('JOB_NOT_FOUND', `job ${jobId} does not exist`, { jobId });
      const held = ACTIVE_STATUSES.has(row.status as JobStatus);
      const outcome = this.#reportOneSync(jobId, row.attempt, {
        status: 'Killed',
        minorStatus: 'Marked for termination',
        at,
        source,
      });
      const commandQueued = outcome.applied && held;
      if (commandQueued) this.#sql.insertCommand.run(jobId, row.attempt, 'kill', at);
      return { ...outcome, commandQueued };
    });
  }

  async takePendingCommands(jobId: number, attempt: number, at: string): Promise<JobCommand[]> {
    return this.#writes.write(() => this.#takeCommandsSync(jobId, attempt, at));
  }

  #takeCommandsSync(jobId: number, attempt: number, at: string): JobCommand[] {
    const pending = this.#sql.pendingCommands.all(jobId, attempt) as { id: number; command: string }[];
    for (const command of pending) this.#sql.markCommandSent.run(at, command.id);
    return pending.map((command) => ({ jobId, attempt, command: command.command as JobCommand['command'] }));
  }

  async recordHeartbeat(jobId: number, attempt: number, sample: HeartbeatSample, at: string): Promise<JobCommand[]> {
    return this.#writes.write((): JobCommand[] => {
      const row = this.#sql.insertHeartbeat.get({ jobId, attempt, at, ...sample }) as
        Pick<JobRow, 'status' | 'minor_status'> | undefined;
      // A heartbeat brings a Stalled job of this attempt back to Running (DIRAC does the same).
      if (row?.status === 'Stalled') {
        this.#reportOneSync(jobId, attempt, {
          status: 'Running',
          minorStatus: row.minor_status,
          at,
          source: 'Heartbeat',
        });
      }
      return this.#takeCommandsSync(jobId, attempt, at);
    });
  }

  async recordOutputTail(
    jobId: number,
    attempt: number,
    tail: OutputTail,
    at: string,
    heldBy?: ReportingPilot,
  ): Promise<void> {
    const holder = { pilotId: heldBy?.pilotId ?? null, vo: heldBy?.vo ?? null };
    await this.#writes.write(() => {
      this.#sql.upsertOutputTail.run({ jobId, attempt, at, stdout: tail.stdout, stderr: tail.stderr, ...holder });
    });
  }

  async getOutputTail(jobId: number): Promise<StoredOutputTail | null> {
    const row = this.#sql.outputTail.get(jobId) as Record<string, unknown> | undefined;
    return row ? outputTailFromRow(row) : null;
  }

  async findHeldJobs(statuses: readonly JobStatus[], before: string): Promise<HeldJob[]> {
    if (statuses.length === 0) return [];
    const lastSign = "max(coalesce(heartbeat_at, ''), last_update_at)";
    const rows = this.#db
      .prepare(
        `SELECT id, attempt, status, pilot_id, ${lastSign} AS last_sign_at FROM jobs
         WHERE status IN (${statuses.map(() => '?').join(', ')}) AND ${lastSign} < ? ORDER BY id`,
      )
      .all(...statuses, before) as {
      id: number;
      attempt: number;
      status: JobStatus;
      pilot_id: string | null;
      last_sign_at: string;
    }[];
    return rows.map((row) => ({
      id: row.id,
      attempt: row.attempt,
      status: row.status,
      pilotId: row.pilot_id,
      lastSignAt: row.last_sign_at,
    }));
  }

  async markStalled(jobId: number, attempt: number, at: string, source = 'FaultSweeper'): Promise<boolean> {
    return this.#writes.write(() => {
      const row = this.#sql.getJob.get(jobId) as JobRow | undefined;
      if (!row || row.attempt !== attempt || (row.status !== 'Running' && row.status !== 'Completing')) return false;
      this.#sql.insertHistory.run({
        jobId,
        attempt,
        at,
        status: 'Stalled',
        minorStatus: row.minor_status,
        applicationStatus: row.application_status,
        source,
        applied: 1,
        reportKey: null,
      });
      this.#sql.markStalled.run(jobId);
      return true;
    });
  }

  async rescheduleJob(jobId: number, attempt: number, request: RescheduleRequest): Promise<RescheduleOutcome> {
    return this.#writes.write((): RescheduleOutcome => {
      const sql = this.#sql;
      const row = sql.getJob.get(jobId) as JobRow | undefined;
      const status = (row?.status ?? null) as JobStatus | null;
      const held = status !== null && ACTIVE_STATUSES.has(status);
      const finished = status !== null && RESCHEDULABLE_FINAL_STATUSES.has(status);
      if (!row || row.attempt !== attempt || !(held || (request.allowFinished && finished))) {
        return { kind: 'stale', status };
      }
      const lastAttempt = attempt >= request.maxAttempts;
      if (lastAttempt && request.onLimit === 'refuse') return { kind: 'limit-reached' };
      // Whatever still runs this attempt is told to stop; the command is fenced by the attempt.
      if (held) sql.insertCommand.run(jobId, attempt, 'kill', request.at);
      if (lastAttempt) {
        this.#reportOneSync(jobId, attempt, {
          status: 'Failed',
          minorStatus: `${request.reason}; maximum of reschedulings reached`,
          at: request.at,
          source: request.source,
        });
        return { kind: 'failed' };
      }
      if (held && row.site !== null) sql.activityReleased.run(row.site, row.job_type);
      sql.insertHistory.run({
        jobId,
        attempt,
        at: request.at,
        status: 'Rescheduled',
        minorStatus: request.reason,
        applicationStatus: row.application_status,
        source: request.source,
        applied: 1,
        reportKey: null,
      });
      sql.startNextAttempt.run({ jobId, reason: request.reason, holdUntil: request.holdUntil, at: request.at });
      return { kind: 'rescheduled', attempt: attempt + 1, holdUntil: request.holdUntil };
    });
  }

  async releaseRescheduled(at: string): Promise<{ jobs: number; taskQueueIds: number[] }> {
    return this.#writes.write(() => {
      const sql = this.#sql;
      const due = sql.heldOver.all(at) as { id: number; attempt: number; task_queue_id: number | null }[];
      const taskQueues = new Set<number>();
      for (const job of due) {
        sql.insertHistory.run({
          jobId: job.id,
          attempt: job.attempt,
          at,
          status: 'Waiting',
          minorStatus: 'Job Rescheduled',
          applicationStatus: 'Unknown',
          source: 'FaultSweeper',
          applied: 1,
          reportKey: null,
        });
        sql.backToWaiting.run({ jobId: job.id, at });
        if (job.task_queue_id !== null) {
          sql.countWaiting.run(1, job.task_queue_id);
          taskQueues.add(job.task_queue_id);
        }
      }
      return { jobs: due.length, taskQueueIds: [...taskQueues] };
    });
  }

  async recordSandbox(sandbox: SandboxRecord): Promise<void> {
    this.#sql.insertSandbox.run(sandbox);
  }

  async sandboxBytesOfVo(vo: string): Promise<number> {
    return Number(this.#sql.sandboxBytesOfVo.get(vo));
  }

  async purgeJobs(request: PurgeRequest): Promise<number[]> {
    return this.#writes.write((): number[] => {
      const ids = this.#db
        .prepare(
          `SELECT id FROM jobs
           WHERE (status IN (${PURGED_FINAL_STATUSES.map(() => '?').join(', ')}) AND last_update_at < ?)
              OR (status = 'Deleted' AND last_update_at < ?)
           LIMIT ?`,
        )
        .pluck()
        .all(
          ...PURGED_FINAL_STATUSES,
          request.finalBefore ?? '',
          request.deletedBefore ?? '',
          request.limit,
        ) as number[];
      // The record of a schedule's slots is kept as long as finished jobs are.
      if (request.finalBefore !== null) {
        this.#db
          .prepare(
            `DELETE FROM schedule_runs WHERE (schedule_id, slot_at) IN
               (SELECT schedule_id, slot_at FROM schedule_runs WHERE fired_at < ? LIMIT ?)`,
          )
          .run(request.finalBefore, request.limit);
      }
      if (ids.length === 0) return [];
      const list = JSON.stringify(ids);
      for (const table of ['job_history', 'job_commands', 'job_output_tails', 'job_sandboxes']) {
        this.#db.prepare(`DELETE FROM ${table} WHERE job_id IN (SELECT value FROM json_each(?))`).run(list);
      }
      this.#db.prepare('DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?))').run(list);
      return ids;
    });
  }

  async purgeUnusedSandboxes(before: string, limit: number): Promise<string[]> {
    return this.#writes.write(
      (): string[] =>
        this.#db
          .prepare(
            `DELETE FROM sandboxes WHERE sha256 IN (
               SELECT s.sha256 FROM sandboxes s WHERE s.last_access_at < ?
                 AND NOT EXISTS (SELECT 1 FROM job_sandboxes l WHERE l.sha256 = s.sha256)
                 AND NOT EXISTS (SELECT 1 FROM schedule_sandboxes k WHERE k.sha256 = s.sha256)
                 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.output_sandbox = 'sha256:' || s.sha256)
               LIMIT ?)
             RETURNING sha256`,
          )
          .pluck()
          .all(before, limit) as string[],
    );
  }

  async getSandbox(sha256: string): Promise<SandboxRecord | null> {
    const row = this.#sql.getSandbox.get(sha256) as Record<string, unknown> | undefined;
    if (!row) return null;
    return {
      sha256: String(row.sha256),
      sizeBytes: Number(row.size_bytes),
      vo: String(row.vo),
      owner: String(row.owner),
      createdAt: String(row.created_at),
    };
  }

  /** Back to SQLite's own checkpoints inside commits (when the WAL checkpointer cannot run). */
  checkpointInCommits(): void {
    if (this.#db.open) this.#db.pragma('wal_autocheckpoint = 1000');
  }

  /** Holds and releases this store's group commits (for the WAL checkpointer). */
  get writeGate(): WriteGate {
    return this.#writes;
  }

  /** While refused, every write fails (SQLITE_READONLY, answered as STORE_UNAVAILABLE): the file is lost. */
  refuseWrites(refuse: boolean): void {
    if (this.#db.open) this.#db.pragma(`query_only = ${refuse ? 'ON' : 'OFF'}`);
  }

  async close(): Promise<void> {
    if (!this.#db.open) return;
    this.#writes.flushNow();
    this.#db.close();
  }
}
