/**
 * JobStore on PostgreSQL, for several matcher replicas sharing one database. Every operation is one
 * transaction; what two replicas could do to the same row at once is serialized by row locks:
 *  - a claim takes the task queue's best waiting job with `FOR UPDATE SKIP LOCKED` (concurrent claims
 *    take different jobs, never the same one) and writes the history, the task queue's count and the
 *    site's running count in the same transaction; a limited (site, job type) is locked first, so its
 *    running limit and matching delay hold across replicas;
 *  - a status report, heartbeat, kill or reschedule locks its job row (`FOR UPDATE`) before it reads
 *    the current status and attempt, so two reports about one job apply one after the other;
 *  - pending commands are taken with one `UPDATE … RETURNING`: each is delivered once, whatever replica
 *    the pilot talks to.
 */
import type pg from 'pg';
import { PilothouseError } from '../../../shared/errors.ts';
import { ACTIVE_STATUSES, RESCHEDULABLE_FINAL_STATUSES, type JobStatus } from '../../../shared/job/status.ts';
import { planStatusReport } from '../status-plan.ts';
import type { JobHistoryEntry, JobStatusReport, JobView } from '../../../shared/job/model.ts';
import type { JobCommand, OutputTail } from '../../../shared/protocol/messages.ts';
import type {
  ClaimBatchResult,
  ClaimRequest,
  ClaimResult,
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
  SiteMaskEntry,
  StatusOutcome,
  PurgeRequest,
  StoredOutputTail,
  SubmitResult,
  TaskQueueStats,
  TaskQueueView,
  ShareUsage,
  StoredSetting,
  ReportingPilot,
  KeyedStatusReport,
} from '../job-store.ts';
import {
  assertReportingPilot,
  claimOfOne,
  claimOfSeveral,
  MAX_SUMMARY_GROUPS,
  PURGED_FINAL_STATUSES,
} from '../job-store.ts';
import { inputSandboxesOf, sandboxGone, SHA256_PREFIX } from '../sandbox-links.ts';
import { settingFromRow, type SettingRow } from '../setting-row.ts';
import { PAUSED_MINOR_STATUS } from '../queue-administration.ts';
import { PgScheduleStore } from './pg-schedule-store.ts';
import { PgQueueAdmin } from './pg-queue-admin.ts';
import {
  historyFromRow,
  jobFromRow,
  outputTailFromRow,
  TASK_QUEUE_VIEW_SQL,
  taskQueueFromRow,
  type JobRow,
} from '../sqlite/rows.ts';
import {
  addKeysetCondition,
  JOB_COLUMN_SQL,
  orderBySql,
  selectionWhere,
  summaryGroup,
  POSTGRES_DIALECT,
} from '../job-search-sql.ts';
import type { JobColumn } from '../../../shared/job/job-search.ts';
import {
  applyPgMigrations,
  ensureSchema,
  openPgPool,
  run,
  withTransaction,
  type PgOptions,
  type PgQueryable,
} from './pg-database.ts';
import { PG_JOB_MIGRATIONS } from './pg-job-migrations.ts';

const HEAD = `SELECT priority, id FROM jobs WHERE task_queue_id = $1 AND status = 'Waiting' ORDER BY priority DESC, id LIMIT 1`;
/** Claims take nothing from a paused TQ ($1): checked in the claiming statement itself, no extra round trip. */
const NOT_PAUSED = 'NOT EXISTS (SELECT 1 FROM task_queues WHERE id = $1 AND paused_at IS NOT NULL)';
const HEAD_UNLESS_PAUSED = `SELECT 1 FROM jobs WHERE task_queue_id = $1 AND status = 'Waiting' AND ${NOT_PAUSED} LIMIT 1`;

export async function openPgJobStore(options: PgOptions): Promise<PgJobStore> {
  const pool = openPgPool(options);
  try {
    await ensureSchema(pool, options.schema);
    await applyPgMigrations(pool, 'jobs', PG_JOB_MIGRATIONS);
  } catch (error) {
    await pool.end();
    throw error;
  }
  return new PgJobStore(pool);
}

interface HistoryRow {
  jobId: number;
  attempt: number;
  at: string;
  status: JobStatus;
  minorStatus: string;
  applicationStatus: string;
  source: string;
  applied: boolean;
  reportKey: string | null;
}

async function insertHistory(client: PgQueryable, h: HistoryRow): Promise<void> {
  await client.query(
    `INSERT INTO job_history (job_id, attempt, at, status, minor_status, application_status, source, applied, report_key)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [h.jobId, h.attempt, h.at, h.status, h.minorStatus, h.applicationStatus, h.source, h.applied, h.reportKey],
  );
}

async function lockJob(client: PgQueryable, jobId: number): Promise<JobRow | undefined> {
  return (await client.query<JobRow>('SELECT * FROM jobs WHERE id = $1 FOR UPDATE', [jobId])).rows[0];
}

async function releaseSite(client: PgQueryable, site: string, jobType: string): Promise<void> {
  await client.query('UPDATE site_activity SET running = greatest(0, running - 1) WHERE site = $1 AND job_type = $2', [
    site,
    jobType,
  ]);
}

async function queueCommand(client: PgQueryable, jobId: number, attempt: number, at: string): Promise<void> {
  await client.query("INSERT INTO job_commands (job_id, attempt, command, created_at) VALUES ($1, $2, 'kill', $3)", [
    jobId,
    attempt,
    at,
  ]);
}

export class PgJobStore implements JobStore {
  readonly appliesWritesInOrder = false;
  readonly #pool: pg.Pool;
  readonly #ownsPool: boolean;
  readonly queueAdmin: PgQueueAdmin;
  readonly schedules: PgScheduleStore;

  /** `ownsPool`: close() ends the pool (false when the matcher's stores share one). */
  constructor(pool: pg.Pool, options: { ownsPool?: boolean } = {}) {
    this.#pool = pool;
    this.queueAdmin = new PgQueueAdmin(pool);
    this.schedules = new PgScheduleStore(pool, (client, jobs, at) => this.#insertJobs(client, jobs, at));
    this.#ownsPool = options.ownsPool ?? true;
  }

  async submitJobs(jobs: NewJob[], at: string): Promise<SubmitResult> {
    if (jobs.length === 0) return { jobIds: [], taskQueueIds: [] };
    return withTransaction(this.#pool, (client) => this.#insertJobs(client, jobs, at));
  }

  /** Stores jobs inside the caller's transaction (a submission, or a schedule's run). */
  async #insertJobs(client: pg.PoolClient, jobs: NewJob[], at: string): Promise<SubmitResult> {
    // Each input sandbox is marked used first: the row lock keeps a concurrent purge off it, and a
    // purge that got there first makes the submission fail whole.
    for (const sha256 of inputSandboxesOf(jobs)) {
      const touched = await client.query('UPDATE sandboxes SET last_access_at = $1 WHERE sha256 = $2', [at, sha256]);
      if (touched.rowCount === 0) throw sandboxGone(sha256);
    }
    const tqIds = new Map<string, number>();
    const pausedTqs = new Set<number>();
    for (const job of jobs) {
      const tq = job.taskQueue;
      if (tqIds.has(tq.key)) continue;
      // Another replica may create the same task queue at the same moment: the key decides.
      await client.query(
        `INSERT INTO task_queues (tq_key, vo, grp, owner, requirements, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tq_key) DO NOTHING`,
        [tq.key, tq.vo, tq.group, tq.owner, JSON.stringify(tq.requirements), at],
      );
      const found = await client.query<{ id: number; paused: boolean }>(
        'SELECT id, paused_at IS NOT NULL AS paused FROM task_queues WHERE tq_key = $1',
        [tq.key],
      );
      tqIds.set(tq.key, found.rows[0]?.id as number);
      if (found.rows[0]?.paused) pausedTqs.add(found.rows[0].id);
    }
    // Ids first (one sequence call for the batch), so that history rows can name their job.
    const ids = (
      await client.query<{ id: number }>(
        `SELECT nextval(pg_get_serial_sequence('jobs', 'id')) AS id FROM generate_series(1, $1)`,
        [jobs.length],
      )
    ).rows.map((row) => row.id);
    const column = <T>(pick: (job: NewJob, index: number) => T): T[] => jobs.map(pick);
    await client.query(
      `INSERT INTO jobs (id, vo, grp, owner, name, job_type, priority, description, task_queue_id, status, minor_status,
                         submitted_at, last_update_at, job_group, schedule_id, schedule_slot)
       SELECT id, vo, grp, owner, name, job_type, priority, description, tq, 'Waiting', 'Pilot Agent Submission', $9, $9,
              job_group, schedule_id, schedule_slot
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[],
                   $10::bigint[], $11::text[], $12::bigint[], $13::text[])
            AS j(id, vo, grp, owner, name, job_type, priority, description, tq, job_group, schedule_id, schedule_slot)`,
      [
        ids,
        column((job) => job.ownership.vo),
        column((job) => job.ownership.group),
        column((job) => job.ownership.owner),
        column((job) => job.description.name),
        column((job) => job.description.jobType),
        column((job) => job.description.priority),
        column((job) => JSON.stringify(job.description)),
        at,
        column((job) => tqIds.get(job.taskQueue.key) as number),
        column((job) => job.description.jobGroup ?? null),
        column((job) => job.schedule?.id ?? null),
        column((job) => job.schedule?.slotAt ?? null),
      ],
    );
    const steps: [JobStatus, string, string][] = [
      ['Received', 'Job accepted', 'JobManager'],
      ['Checking', 'JobSanity', 'JobSanity'],
      ['Waiting', 'Pilot Agent Submission', 'JobScheduling'],
    ];
    for (const [status, minorStatus, source] of steps) {
      await client.query(
        `INSERT INTO job_history (job_id, attempt, at, status, minor_status, application_status, source, applied)
         SELECT id, 1, $2, $3, $4, 'Unknown', $5, true FROM unnest($1::bigint[]) AS j(id) ORDER BY id`,
        [ids, at, status, minorStatus, source],
      );
    }
    // Jobs filed into a paused TQ wait with the minor status that says so, in their history too.
    const pausedIds = ids.filter((_, index) => pausedTqs.has(tqIds.get(jobs[index]!.taskQueue.key) as number));
    if (pausedIds.length > 0) {
      await client.query('UPDATE jobs SET minor_status = $1 WHERE id = ANY($2::bigint[])', [
        PAUSED_MINOR_STATUS,
        pausedIds,
      ]);
      await client.query(
        "UPDATE job_history SET minor_status = $1 WHERE job_id = ANY($2::bigint[]) AND status = 'Waiting'",
        [PAUSED_MINOR_STATUS, pausedIds],
      );
    }
    const links = jobs.flatMap((job, index) =>
      job.description.inputSandbox.map((ref) => [ref.slice(SHA256_PREFIX.length), ids[index]] as const),
    );
    if (links.length > 0) {
      await client.query(
        `INSERT INTO job_sandboxes (sha256, job_id) SELECT * FROM unnest($1::text[], $2::bigint[])
         ON CONFLICT DO NOTHING`,
        [links.map(([sha256]) => sha256), links.map(([, id]) => id)],
      );
    }
    const perTq = new Map<number, number>();
    for (const job of jobs) {
      const id = tqIds.get(job.taskQueue.key) as number;
      perTq.set(id, (perTq.get(id) ?? 0) + 1);
    }
    for (const [id, count] of perTq) {
      await client.query('UPDATE task_queues SET waiting_jobs = waiting_jobs + $1 WHERE id = $2', [count, id]);
    }
    return { jobIds: ids, taskQueueIds: [...perTq.keys()] };
  }

  async getJob(id: number): Promise<JobView | null> {
    const row = (await run(() => this.#pool.query<JobRow>('SELECT * FROM jobs WHERE id = $1', [id]))).rows[0];
    return row ? jobFromRow(row) : null;
  }

  async getJobHistory(id: number): Promise<JobHistoryEntry[]> {
    const rows = (await run(() => this.#pool.query('SELECT * FROM job_history WHERE job_id = $1 ORDER BY id', [id])))
      .rows;
    return rows.map((row: Record<string, unknown>) => historyFromRow(row));
  }

  async searchJobs(query: JobQuery): Promise<JobPage> {
    const where = selectionWhere(query, POSTGRES_DIALECT);
    const countSql = `SELECT count(*)::int AS n FROM jobs ${where.sql}`;
    const countParams = [...where.params];
    addKeysetCondition(where, query, POSTGRES_DIALECT);
    const offset = query.after === undefined ? (query.page - 1) * query.perPage : 0;
    const n = where.params.length;
    const [total, rows] = await Promise.all([
      query.countTotal === false ? null : run(() => this.#pool.query<{ n: number }>(countSql, countParams)),
      run(() =>
        this.#pool.query<JobRow>(
          `SELECT * FROM jobs ${where.sql} ORDER BY ${orderBySql(query.sort, POSTGRES_DIALECT)} LIMIT $${n + 1} OFFSET $${n + 2}`,
          [...where.params, query.perPage, offset],
        ),
      ),
    ]);
    return { total: total === null ? null : (total.rows[0]?.n ?? 0), jobs: rows.rows.map(jobFromRow) };
  }

  async summarizeJobs(selection: JobSelection, groupBy: readonly JobColumn[]): Promise<JobCount[]> {
    const where = selectionWhere(selection, POSTGRES_DIALECT);
    const columns = groupBy.map((column) => JOB_COLUMN_SQL[column]);
    const result = await run(() =>
      this.#pool.query<Record<string, string | number | null>>(
        `SELECT ${columns.map((c, i) => `${c} AS g${i}`).join(', ')}, count(*)::int AS n FROM jobs ${where.sql}
         GROUP BY ${columns.join(', ')} ORDER BY n DESC LIMIT ${MAX_SUMMARY_GROUPS}`,
        where.params,
      ),
    );
    return result.rows.map((row) => summaryGroup(row, groupBy));
  }

  async listTaskQueues(filter: { vo?: string }): Promise<TaskQueueView[]> {
    const result =
      filter.vo === undefined
        ? await run(() => this.#pool.query(`${TASK_QUEUE_VIEW_SQL} WHERE tq.waiting_jobs > 0 ORDER BY tq.id`))
        : await run(() =>
            this.#pool.query(`${TASK_QUEUE_VIEW_SQL} WHERE tq.waiting_jobs > 0 AND tq.vo = $1 ORDER BY tq.id`, [
              filter.vo,
            ]),
          );
    return result.rows.map((row: Record<string, unknown>) => taskQueueFromRow(row));
  }

  async listTaskQueuesAfter(afterId: number, limit: number): Promise<TaskQueueView[]> {
    const result = await run(() =>
      this.#pool.query(`${TASK_QUEUE_VIEW_SQL} WHERE tq.waiting_jobs > 0 AND tq.id > $1 ORDER BY tq.id LIMIT $2`, [
        afterId,
        limit,
      ]),
    );
    return result.rows.map((row: Record<string, unknown>) => taskQueueFromRow(row));
  }

  async getTaskQueue(id: number): Promise<TaskQueueView | null> {
    const row = (await run(() => this.#pool.query(`${TASK_QUEUE_VIEW_SQL} WHERE tq.id = $1`, [id]))).rows[0] as
      Record<string, unknown> | undefined;
    return row ? taskQueueFromRow(row) : null;
  }

  async claimFromTaskQueue(taskQueueId: number, claim: ClaimRequest): Promise<ClaimResult> {
    if (claim.maxRunning === null && claim.matchingDelaySec === null)
      return claimOfOne(await this.#claimInOneStatement(taskQueueId, claim, 1));
    return this.#claimLimited(taskQueueId, claim);
  }

  async claimJobsFromTaskQueue(taskQueueId: number, claim: ClaimRequest, count: number): Promise<ClaimBatchResult> {
    if (claim.maxRunning === null && claim.matchingDelaySec === null)
      return this.#claimInOneStatement(taskQueueId, claim, Math.max(1, Math.floor(count)));
    // Limits are decided match by match: one job at most.
    return claimOfSeveral(await this.#claimLimited(taskQueueId, claim));
  }

  /** One job under a running limit or matching delay: the (site, job type) row is locked first. */
  async #claimLimited(taskQueueId: number, claim: ClaimRequest): Promise<ClaimResult> {
    return withTransaction(this.#pool, async (client): Promise<ClaimResult> => {
      if (claim.maxRunning !== null || claim.matchingDelaySec !== null) {
        // The (site, job type) row is the lock that makes limits hold across replicas.
        await client.query('INSERT INTO site_activity (site, job_type) VALUES ($1, $2) ON CONFLICT DO NOTHING', [
          claim.site,
          claim.jobType,
        ]);
        const activity = (
          await client.query<{ running: number; last_match_at: string | null }>(
            'SELECT running, last_match_at FROM site_activity WHERE site = $1 AND job_type = $2 FOR UPDATE',
            [claim.site, claim.jobType],
          )
        ).rows[0];
        if (claim.maxRunning !== null && (activity?.running ?? 0) >= claim.maxRunning) {
          return { job: null, reason: 'running-limit', taskQueue: await this.#tqStats(client, taskQueueId) };
        }
        if (
          claim.matchingDelaySec !== null &&
          activity?.last_match_at &&
          Date.parse(claim.at) - Date.parse(activity.last_match_at) < claim.matchingDelaySec * 1000
        ) {
          return { job: null, reason: 'matching-delay', taskQueue: await this.#tqStats(client, taskQueueId) };
        }
      }
      const row = await this.#claimNext(client, taskQueueId, claim);
      if (!row) {
        const stats = await this.#tqStats(client, taskQueueId);
        return { job: null, reason: stats.paused ? 'paused' : 'empty', taskQueue: stats };
      }
      const waiting = (
        await client.query<{ waiting_jobs: number }>(
          'UPDATE task_queues SET waiting_jobs = waiting_jobs - 1 WHERE id = $1 RETURNING waiting_jobs',
          [taskQueueId],
        )
      ).rows[0]?.waiting_jobs;
      await insertHistory(client, {
        jobId: row.id,
        attempt: row.attempt,
        at: claim.at,
        status: 'Matched',
        minorStatus: 'Assigned',
        applicationStatus: 'Unknown',
        source: 'Matcher',
        applied: true,
        reportKey: null,
      });
      await client.query(
        `INSERT INTO site_activity (site, job_type, running, last_match_at) VALUES ($1, $2, 1, $3)
         ON CONFLICT (site, job_type) DO UPDATE SET running = site_activity.running + 1, last_match_at = excluded.last_match_at`,
        [claim.site, row.job_type, claim.at],
      );
      return { job: jobFromRow(row), taskQueue: await this.#tqStats(client, taskQueueId, waiting) };
    });
  }

  /**
   * A claim without limits is one statement (one round trip, its own transaction): up to `count` jobs
   * taken with SKIP LOCKED, their history rows, the site's count and the TQ's count, and the TQ's next
   * job for the matcher's index (the one after the claimed jobs; a concurrent claim may take it, which
   * only costs the index one more refresh).
   */
  async #claimInOneStatement(taskQueueId: number, claim: ClaimRequest, count: number): Promise<ClaimBatchResult> {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const result = await run(() =>
        this.#pool.query<JobRow & { tq_waiting: number | null; head_id: number | null; head_priority: number | null }>(
          `WITH claimed AS (
             UPDATE jobs SET status = 'Matched', minor_status = 'Assigned', application_status = 'Unknown',
                             site = $2, ce = $3, pilot_id = $4, last_update_at = $5
             WHERE id IN (SELECT id FROM jobs WHERE task_queue_id = $1 AND status = 'Waiting'
                            AND ${NOT_PAUSED}
                          ORDER BY priority DESC, id LIMIT $6 FOR UPDATE SKIP LOCKED)
             RETURNING *),
           history AS (
             INSERT INTO job_history (job_id, attempt, at, status, minor_status, application_status, source, applied)
             SELECT id, attempt, $5, 'Matched', 'Assigned', 'Unknown', 'Matcher', true FROM claimed ORDER BY priority DESC, id),
           activity AS (
             INSERT INTO site_activity (site, job_type, running, last_match_at)
             SELECT $2, job_type, count(*), $5 FROM claimed GROUP BY job_type
             ON CONFLICT (site, job_type) DO UPDATE SET running = site_activity.running + excluded.running, last_match_at = excluded.last_match_at),
           counted AS (
             UPDATE task_queues SET waiting_jobs = waiting_jobs - (SELECT count(*) FROM claimed)
             WHERE id = $1 AND EXISTS (SELECT 1 FROM claimed) RETURNING waiting_jobs),
           head AS (
             SELECT id, priority FROM jobs WHERE task_queue_id = $1 AND status = 'Waiting'
               AND id NOT IN (SELECT id FROM claimed)
             ORDER BY priority DESC, id LIMIT 1)
           SELECT claimed.*, (SELECT waiting_jobs FROM counted) AS tq_waiting,
                  (SELECT id FROM head) AS head_id, (SELECT priority FROM head) AS head_priority
           FROM claimed ORDER BY claimed.priority DESC, claimed.id`,
          [taskQueueId, claim.site, claim.ce, claim.pilotId, claim.at, count],
        ),
      );
      const first = result.rows[0];
      if (first) {
        const { tq_waiting: waiting, head_id: headId, head_priority: headPriority } = first;
        return {
          // jobFromRow reads the job's own columns; the figures joined to each row are left aside.
          jobs: result.rows.map((row) => jobFromRow(row)),
          taskQueue: { id: taskQueueId, waitingJobs: waiting ?? 0, topPriority: headPriority ?? 0, nextJobId: headId },
        };
      }
      // Nothing claimed: the TQ is paused or empty, or its next jobs were taken under this statement's feet.
      const stats = await this.#tqStats(this.#pool, taskQueueId);
      if (stats.paused) return { jobs: [], reason: 'paused', taskQueue: stats };
      if (stats.nextJobId === null) return { jobs: [], reason: 'empty', taskQueue: stats };
    }
    return { jobs: [], reason: 'empty', taskQueue: await this.#tqStats(this.#pool, taskQueueId) };
  }

  /**
   * The TQ's best waiting job that no other transaction holds, now Matched. A row another replica
   * claimed and committed meanwhile fails the re-check of `status = 'Waiting'` under READ COMMITTED and
   * can make the locking SELECT come back empty although other jobs wait: it is asked again then.
   */
  async #claimNext(client: pg.PoolClient, taskQueueId: number, claim: ClaimRequest): Promise<JobRow | undefined> {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const claimed = (
        await client.query<JobRow>(
          `UPDATE jobs SET status = 'Matched', minor_status = 'Assigned', application_status = 'Unknown',
                           site = $2, ce = $3, pilot_id = $4, last_update_at = $5
           WHERE id = (SELECT id FROM jobs WHERE task_queue_id = $1 AND status = 'Waiting' AND ${NOT_PAUSED}
                       ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING *`,
          [taskQueueId, claim.site, claim.ce, claim.pilotId, claim.at],
        )
      ).rows[0];
      if (claimed) return claimed;
      const anyLeft = await client.query(`${HEAD_UNLESS_PAUSED}`, [taskQueueId]);
      if (anyLeft.rows.length === 0) return undefined;
    }
    return undefined;
  }

  async #tqStats(client: PgQueryable, id: number, waitingJobs?: number): Promise<TaskQueueStats> {
    const head = (await client.query<{ priority: number; id: number }>(HEAD, [id])).rows[0];
    const tq = (
      await client.query<{ waiting_jobs: number; paused: boolean }>(
        'SELECT waiting_jobs, paused_at IS NOT NULL AS paused FROM task_queues WHERE id = $1',
        [id],
      )
    ).rows[0];
    return {
      id,
      waitingJobs: waitingJobs ?? tq?.waiting_jobs ?? 0,
      topPriority: head?.priority ?? 0,
      nextJobId: head?.id ?? null,
      ...(tq?.paused && { paused: true }),
    };
  }

  async runningAtSite(site: string): Promise<Record<string, number>> {
    const rows = (
      await run(() =>
        this.#pool.query<{ job_type: string; running: number }>(
          'SELECT job_type, running FROM site_activity WHERE site = $1 AND running > 0',
          [site],
        ),
      )
    ).rows;
    return Object.fromEntries(rows.map((row) => [row.job_type, row.running]));
  }

  async setSiteStatus(entry: SiteMaskEntry): Promise<void> {
    const values = [entry.site, entry.status, entry.reason, entry.changedBy, entry.changedAt];
    await withTransaction(this.#pool, async (client) => {
      await client.query(
        `INSERT INTO site_mask (site, status, reason, changed_by, changed_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (site) DO UPDATE SET status = excluded.status, reason = excluded.reason,
           changed_by = excluded.changed_by, changed_at = excluded.changed_at`,
        values,
      );
      await client.query(
        'INSERT INTO site_mask_log (site, status, reason, changed_by, changed_at) VALUES ($1, $2, $3, $4, $5)',
        values,
      );
    });
  }

  async siteMask(): Promise<SiteMaskEntry[]> {
    const rows = (await run(() => this.#pool.query<Record<string, string>>('SELECT * FROM site_mask ORDER BY site')))
      .rows;
    return rows.map((row) => ({
      site: String(row.site),
      status: row.status as SiteMaskEntry['status'],
      reason: String(row.reason),
      changedBy: String(row.changed_by),
      changedAt: String(row.changed_at),
    }));
  }

  async getSetting(name: string): Promise<StoredSetting | null> {
    const rows = (await run(() => this.#pool.query<SettingRow>('SELECT * FROM settings WHERE name = $1', [name]))).rows;
    return rows[0] ? settingFromRow(rows[0]) : null;
  }

  async addShareUsage(deltas: readonly ShareUsage[]): Promise<ShareUsage[]> {
    if (deltas.length > 0)
      await run(() =>
        this.#pool.query(
          `INSERT INTO share_usage (scope, entity, usage)
           SELECT * FROM unnest($1::text[], $2::text[], $3::float8[])
           ON CONFLICT (scope, entity) DO UPDATE SET usage = share_usage.usage + excluded.usage`,
          [deltas.map((d) => d.scope), deltas.map((d) => d.entity), deltas.map((d) => d.usage)],
        ),
      );
    return (await run(() => this.#pool.query<ShareUsage>('SELECT scope, entity, usage FROM share_usage'))).rows;
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
    return withTransaction(this.#pool, (client) =>
      this.#reportStatusIn(client, jobId, attempt, report, reportKey, undefined, heldBy),
    );
  }

  /** In one transaction, each report as reportStatus applies it (the row lock is taken once and kept). */
  async reportStatuses(
    jobId: number,
    attempt: number,
    reports: readonly KeyedStatusReport[],
    heldBy?: ReportingPilot,
  ): Promise<StatusOutcome[]> {
    return withTransaction(this.#pool, async (client) => {
      const outcomes: StatusOutcome[] = [];
      for (const { report, reportKey } of reports) {
        outcomes.push(await this.#reportStatusIn(client, jobId, attempt, report, reportKey, undefined, heldBy));
      }
      return outcomes;
    });
  }

  async #reportStatusIn(
    client: pg.PoolClient,
    jobId: number,
    attempt: number,
    report: JobStatusReport,
    reportKey?: string,
    locked?: JobRow,
    heldBy?: ReportingPilot,
  ): Promise<StatusOutcome> {
    const row = locked ?? (await lockJob(client, jobId));
    if (!row) throw new PilothouseError('JOB_NOT_FOUND', `job ${jobId} does not exist`, { jobId });
    assertReportingPilot(jobId, row, heldBy);
    const current = row.status as JobStatus;
    if (row.attempt !== attempt) {
      throw new PilothouseError('ATTEMPT_MISMATCH', `job ${jobId} is at attempt ${row.attempt}, not ${attempt}`, {
        jobId,
        attempt: row.attempt,
      });
    }
    if (reportKey !== undefined) {
      const seen = await client.query('SELECT 1 FROM job_history WHERE job_id = $1 AND report_key = $2', [
        jobId,
        reportKey,
      ]);
      if (seen.rows.length > 0) return { applied: false, status: current, duplicate: true };
    }
    const plan = planStatusReport(
      { status: current, minorStatus: row.minor_status, applicationStatus: row.application_status },
      report,
    );
    await insertHistory(client, {
      jobId,
      attempt,
      at: report.at,
      status: plan.next,
      minorStatus: plan.minorStatus,
      applicationStatus: plan.applicationStatus,
      source: plan.source,
      applied: plan.applied,
      reportKey: reportKey ?? null,
    });
    if (!plan.applied) return { applied: false, status: current, duplicate: false };
    if (plan.leavesWaiting && row.task_queue_id !== null) {
      await client.query('UPDATE task_queues SET waiting_jobs = waiting_jobs - 1 WHERE id = $1', [row.task_queue_id]);
    }
    if (plan.releasesSite && row.site !== null) await releaseSite(client, row.site, row.job_type);
    await client.query(
      `UPDATE jobs SET status = $2, minor_status = $3, application_status = $4,
         exit_code = coalesce($5, exit_code), output_sandbox = coalesce($6, output_sandbox),
         started_at = CASE WHEN $2 = 'Running' THEN coalesce(started_at, $7) ELSE started_at END,
         ended_at = CASE WHEN $8 THEN coalesce(ended_at, $7) ELSE ended_at END,
         heartbeat_at = CASE WHEN $9 THEN $7 ELSE heartbeat_at END,
         last_update_at = $7
       WHERE id = $1`,
      [
        jobId,
        plan.next,
        plan.minorStatus,
        plan.applicationStatus,
        report.exitCode ?? null,
        report.outputSandbox ?? null,
        report.at,
        plan.isFinal,
        plan.fromPilot,
      ],
    );
    return { applied: true, status: plan.next, duplicate: false };
  }

  async killJob(jobId: number, at: string, source: string): Promise<StatusOutcome & { commandQueued: boolean }> {
    return withTransaction(this.#pool, async (client) => {
      const row = await lockJob(client, jobId);
      if (!row) throw new PilothouseError('JOB_NOT_FOUND', `job ${jobId} does not exist`, { jobId });
      const held = ACTIVE_STATUSES.has(row.status as JobStatus);
      const outcome = await this.#reportStatusIn(
        client,
        jobId,
        row.attempt,
        { status: 'Killed', minorStatus: 'Marked for termination', at, source },
        undefined,
        row,
      );
      const commandQueued = outcome.applied && held;
      if (commandQueued) await queueCommand(client, jobId, row.attempt, at);
      return { ...outcome, commandQueued };
    });
  }

  async takePendingCommands(jobId: number, attempt: number, at: string): Promise<JobCommand[]> {
    return this.#takeCommands(this.#pool, jobId, attempt, at);
  }

  /** One UPDATE marks them sent: a command reaches its pilot once, through whatever replica. */
  async #takeCommands(client: PgQueryable, jobId: number, attempt: number, at: string): Promise<JobCommand[]> {
    const taken = await run(() =>
      client.query<{ id: number; command: string }>(
        `UPDATE job_commands SET sent_at = $3 WHERE job_id = $1 AND attempt = $2 AND sent_at IS NULL RETURNING id, command`,
        [jobId, attempt, at],
      ),
    );
    return taken.rows
      .sort((a, b) => a.id - b.id)
      .map((row) => ({ jobId, attempt, command: row.command as JobCommand['command'] }));
  }

  async recordHeartbeat(jobId: number, attempt: number, sample: HeartbeatSample, at: string): Promise<JobCommand[]> {
    return withTransaction(this.#pool, async (client) => {
      const row = (
        await client.query<JobRow>(
          `UPDATE jobs SET heartbeat_at = $3, cpu_sec = $4, rss_mb = $5, wall_sec = $6
           WHERE id = $1 AND attempt = $2 RETURNING *`,
          [jobId, attempt, at, sample.cpuSec, sample.rssMB, sample.wallSec],
        )
      ).rows[0];
      // A heartbeat brings a Stalled job of this attempt back to Running (DIRAC does the same).
      if (row?.status === 'Stalled') {
        await this.#reportStatusIn(
          client,
          jobId,
          attempt,
          { status: 'Running', minorStatus: row.minor_status, at, source: 'Heartbeat' },
          undefined,
          row,
        );
      }
      return this.#takeCommands(client, jobId, attempt, at);
    });
  }

  async recordOutputTail(
    jobId: number,
    attempt: number,
    tail: OutputTail,
    at: string,
    heldBy?: ReportingPilot,
  ): Promise<void> {
    await run(() =>
      this.#pool.query(
        `INSERT INTO job_output_tails (job_id, attempt, stdout, stderr, updated_at)
         SELECT id, attempt, $3, $4, $5 FROM jobs
         WHERE id = $1 AND attempt = $2 AND ($6::text IS NULL OR (pilot_id = $6 AND vo = $7::text))
         ON CONFLICT (job_id) DO UPDATE SET attempt = excluded.attempt, stdout = excluded.stdout,
           stderr = excluded.stderr, updated_at = excluded.updated_at`,
        [jobId, attempt, tail.stdout, tail.stderr, at, heldBy?.pilotId ?? null, heldBy?.vo ?? null],
      ),
    );
  }

  async getOutputTail(jobId: number): Promise<StoredOutputTail | null> {
    const result = await run(() => this.#pool.query('SELECT * FROM job_output_tails WHERE job_id = $1', [jobId]));
    const row = result.rows[0] as Record<string, unknown> | undefined;
    return row ? outputTailFromRow(row) : null;
  }

  async findHeldJobs(statuses: readonly JobStatus[], before: string): Promise<HeldJob[]> {
    if (statuses.length === 0) return [];
    const lastSign = "greatest(coalesce(heartbeat_at, ''), last_update_at)";
    const rows = (
      await run(() =>
        this.#pool.query<{
          id: number;
          attempt: number;
          status: JobStatus;
          pilot_id: string | null;
          last_sign_at: string;
        }>(
          `SELECT id, attempt, status, pilot_id, ${lastSign} AS last_sign_at FROM jobs
           WHERE status = ANY($1::text[]) AND ${lastSign} < $2 ORDER BY id`,
          [statuses, before],
        ),
      )
    ).rows;
    return rows.map((row) => ({
      id: row.id,
      attempt: row.attempt,
      status: row.status,
      pilotId: row.pilot_id,
      lastSignAt: row.last_sign_at,
    }));
  }

  async markStalled(jobId: number, attempt: number, at: string, source = 'FaultSweeper'): Promise<boolean> {
    return withTransaction(this.#pool, async (client) => {
      const row = await lockJob(client, jobId);
      if (!row || row.attempt !== attempt || (row.status !== 'Running' && row.status !== 'Completing')) return false;
      await insertHistory(client, {
        jobId,
        attempt,
        at,
        status: 'Stalled',
        minorStatus: row.minor_status,
        applicationStatus: row.application_status,
        source,
        applied: true,
        reportKey: null,
      });
      await client.query("UPDATE jobs SET status = 'Stalled' WHERE id = $1", [jobId]);
      return true;
    });
  }

  async rescheduleJob(jobId: number, attempt: number, request: RescheduleRequest): Promise<RescheduleOutcome> {
    return withTransaction(this.#pool, async (client): Promise<RescheduleOutcome> => {
      const row = await lockJob(client, jobId);
      const status = (row?.status ?? null) as JobStatus | null;
      const held = status !== null && ACTIVE_STATUSES.has(status);
      const finished = status !== null && RESCHEDULABLE_FINAL_STATUSES.has(status);
      if (!row || row.attempt !== attempt || !(held || (request.allowFinished && finished))) {
        return { kind: 'stale', status };
      }
      const lastAttempt = attempt >= request.maxAttempts;
      if (lastAttempt && request.onLimit === 'refuse') return { kind: 'limit-reached' };
      if (held) await queueCommand(client, jobId, attempt, request.at);
      if (lastAttempt) {
        await this.#reportStatusIn(
          client,
          jobId,
          attempt,
          {
            status: 'Failed',
            minorStatus: `${request.reason}; maximum of reschedulings reached`,
            at: request.at,
            source: request.source,
          },
          undefined,
          row,
        );
        return { kind: 'failed' };
      }
      if (held && row.site !== null) await releaseSite(client, row.site, row.job_type);
      await insertHistory(client, {
        jobId,
        attempt,
        at: request.at,
        status: 'Rescheduled',
        minorStatus: request.reason,
        applicationStatus: row.application_status,
        source: request.source,
        applied: true,
        reportKey: null,
      });
      await client.query(
        `UPDATE jobs SET status = 'Rescheduled', minor_status = $2, application_status = 'Unknown',
           attempt = attempt + 1, site = NULL, ce = NULL, pilot_id = NULL, exit_code = NULL, output_sandbox = NULL,
           started_at = NULL, ended_at = NULL, heartbeat_at = NULL, cpu_sec = NULL, rss_mb = NULL, wall_sec = NULL,
           hold_until = $3, last_update_at = $4
         WHERE id = $1`,
        [jobId, request.reason, request.holdUntil, request.at],
      );
      return { kind: 'rescheduled', attempt: attempt + 1, holdUntil: request.holdUntil };
    });
  }

  async releaseRescheduled(at: string): Promise<{ jobs: number; taskQueueIds: number[] }> {
    return withTransaction(this.#pool, async (client) => {
      // Two replicas sweeping at once release different jobs, each once.
      const due = (
        await client.query<{ id: number; attempt: number; task_queue_id: number | null }>(
          `SELECT id, attempt, task_queue_id FROM jobs WHERE status = 'Rescheduled' AND hold_until <= $1
           ORDER BY id FOR UPDATE SKIP LOCKED`,
          [at],
        )
      ).rows;
      const taskQueues = new Map<number, number>();
      for (const job of due) {
        await insertHistory(client, {
          jobId: job.id,
          attempt: job.attempt,
          at,
          status: 'Waiting',
          minorStatus: 'Job Rescheduled',
          applicationStatus: 'Unknown',
          source: 'FaultSweeper',
          applied: true,
          reportKey: null,
        });
        await client.query(
          "UPDATE jobs SET status = 'Waiting', minor_status = 'Job Rescheduled', hold_until = NULL, last_update_at = $2 WHERE id = $1",
          [job.id, at],
        );
        if (job.task_queue_id !== null) taskQueues.set(job.task_queue_id, (taskQueues.get(job.task_queue_id) ?? 0) + 1);
      }
      for (const [id, count] of taskQueues) {
        await client.query('UPDATE task_queues SET waiting_jobs = waiting_jobs + $1 WHERE id = $2', [count, id]);
      }
      return { jobs: due.length, taskQueueIds: [...taskQueues.keys()] };
    });
  }

  async recordSandbox(sandbox: SandboxRecord): Promise<void> {
    await run(() =>
      this.#pool.query(
        `INSERT INTO sandboxes (sha256, size_bytes, vo, owner, created_at, last_access_at) VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (sha256) DO UPDATE SET last_access_at = excluded.last_access_at`,
        [sandbox.sha256, sandbox.sizeBytes, sandbox.vo, sandbox.owner, sandbox.createdAt],
      ),
    );
  }

  async sandboxBytesOfVo(vo: string): Promise<number> {
    const result = await run(() =>
      this.#pool.query('SELECT coalesce(sum(size_bytes), 0) AS bytes FROM sandboxes WHERE vo = $1', [vo]),
    );
    return Number((result.rows[0] as { bytes: string }).bytes);
  }

  async purgeJobs(request: PurgeRequest): Promise<number[]> {
    return withTransaction(this.#pool, async (client) => {
      const ids = (
        await client.query<{ id: number }>(
          `SELECT id FROM jobs
           WHERE (status = ANY($1::text[]) AND last_update_at < $2) OR (status = 'Deleted' AND last_update_at < $3)
           LIMIT $4 FOR UPDATE SKIP LOCKED`,
          [PURGED_FINAL_STATUSES, request.finalBefore ?? '', request.deletedBefore ?? '', request.limit],
        )
      ).rows.map((row) => Number(row.id));
      // The record of a schedule's slots is kept as long as finished jobs are.
      if (request.finalBefore !== null) {
        await client.query(
          `DELETE FROM schedule_runs WHERE (schedule_id, slot_at) IN
             (SELECT schedule_id, slot_at FROM schedule_runs WHERE fired_at < $1 LIMIT $2)`,
          [request.finalBefore, request.limit],
        );
      }
      if (ids.length === 0) return [];
      for (const table of ['job_history', 'job_commands', 'job_output_tails', 'job_sandboxes']) {
        await client.query(`DELETE FROM ${table} WHERE job_id = ANY($1::bigint[])`, [ids]);
      }
      await client.query('DELETE FROM jobs WHERE id = ANY($1::bigint[])', [ids]);
      return ids;
    });
  }

  async purgeUnusedSandboxes(before: string, limit: number): Promise<string[]> {
    const result = await run(() =>
      this.#pool.query<{ sha256: string }>(
        `DELETE FROM sandboxes WHERE sha256 IN (
           SELECT s.sha256 FROM sandboxes s WHERE s.last_access_at < $1
             AND NOT EXISTS (SELECT 1 FROM job_sandboxes l WHERE l.sha256 = s.sha256)
             AND NOT EXISTS (SELECT 1 FROM schedule_sandboxes k WHERE k.sha256 = s.sha256)
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.output_sandbox = 'sha256:' || s.sha256)
           LIMIT $2 FOR UPDATE SKIP LOCKED)
           AND last_access_at < $1
         RETURNING sha256`,
        [before, limit],
      ),
    );
    return result.rows.map((row) => row.sha256);
  }

  async getSandbox(sha256: string): Promise<SandboxRecord | null> {
    const row = (await run(() => this.#pool.query('SELECT * FROM sandboxes WHERE sha256 = $1', [sha256]))).rows[0] as
      Record<string, unknown> | undefined;
    if (!row) return null;
    return {
      sha256: String(row.sha256),
      sizeBytes: Number(row.size_bytes),
      vo: String(row.vo),
      owner: String(row.owner),
      createdAt: String(row.created_at),
    };
  }

  async close(): Promise<void> {
    if (this.#ownsPool) await this.#pool.end().catch(() => undefined);
  }
}
