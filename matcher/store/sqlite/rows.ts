/** Row ↔ domain mapping for the SQLite store (snake_case columns, JSON text columns). */
import type { JobHistoryEntry, JobView } from '../../../shared/job/model.ts';
import type { JobStatus } from '../../../shared/job/status.ts';
import type { StoredOutputTail, TaskQueueView } from '../job-store.ts';
import type { TaskQueueRequirements } from '../../matching/task-queue-key.ts';

export interface JobRow {
  id: number;
  vo: string;
  grp: string;
  owner: string;
  name: string;
  job_type: string;
  priority: number;
  description: string;
  task_queue_id: number | null;
  status: string;
  minor_status: string;
  application_status: string;
  exit_code: number | null;
  site: string | null;
  ce: string | null;
  pilot_id: string | null;
  attempt: number;
  submitted_at: string;
  started_at: string | null;
  ended_at: string | null;
  last_update_at: string;
  heartbeat_at: string | null;
  output_sandbox: string | null;
  job_group: string | null;
  schedule_id?: number | null;
  schedule_slot?: string | null;
}

export function jobFromRow(row: JobRow): JobView {
  return {
    id: row.id,
    vo: row.vo,
    group: row.grp,
    owner: row.owner,
    name: row.name,
    jobType: row.job_type,
    jobGroup: row.job_group ?? null,
    priority: row.priority,
    status: row.status as JobStatus,
    minorStatus: row.minor_status,
    applicationStatus: row.application_status,
    exitCode: row.exit_code,
    site: row.site,
    ce: row.ce,
    pilotId: row.pilot_id,
    attempt: row.attempt,
    taskQueueId: row.task_queue_id,
    submittedAt: row.submitted_at,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    lastUpdateAt: row.last_update_at,
    heartbeatAt: row.heartbeat_at,
    outputSandbox: row.output_sandbox,
    description: JSON.parse(row.description) as JobView['description'],
    ...(row.schedule_id != null && { scheduleId: Number(row.schedule_id), scheduleSlot: String(row.schedule_slot) }),
  };
}

export function historyFromRow(row: Record<string, unknown>): JobHistoryEntry {
  return {
    at: String(row.at),
    attempt: Number(row.attempt),
    status: row.status as JobStatus,
    minorStatus: String(row.minor_status),
    applicationStatus: String(row.application_status),
    source: String(row.source),
    applied: Boolean(row.applied),
    ...(row.note !== null && row.note !== undefined && { note: String(row.note) }),
  };
}

/**
 * A TQ with the figures its row does not keep: the priority and id of the job it gives next (one seek
 * of the waiting-jobs index each). Portable SQL; callers append their WHERE with their placeholders.
 */
export const TASK_QUEUE_VIEW_SQL = `SELECT tq.*,
  (SELECT priority FROM jobs WHERE task_queue_id = tq.id AND status = 'Waiting' ORDER BY priority DESC, id LIMIT 1) AS top_priority,
  (SELECT id FROM jobs WHERE task_queue_id = tq.id AND status = 'Waiting' ORDER BY priority DESC, id LIMIT 1) AS next_job_id
  FROM task_queues tq`;

export function taskQueueFromRow(row: Record<string, unknown>): TaskQueueView {
  return {
    id: Number(row.id),
    vo: String(row.vo),
    group: String(row.grp),
    owner: String(row.owner),
    requirements: JSON.parse(String(row.requirements)) as TaskQueueRequirements,
    waitingJobs: Number(row.waiting_jobs),
    topPriority: row.top_priority === null ? 0 : Number(row.top_priority),
    nextJobId: row.next_job_id === null ? null : Number(row.next_job_id),
    createdAt: String(row.created_at),
    boost: Number(row.boost ?? 0),
    paused:
      row.paused_at === null || row.paused_at === undefined
        ? null
        : { at: String(row.paused_at), by: String(row.paused_by), reason: String(row.pause_reason) },
  };
}

export function outputTailFromRow(row: Record<string, unknown>): StoredOutputTail {
  return {
    attempt: Number(row.attempt),
    stdout: String(row.stdout),
    stderr: String(row.stderr),
    updatedAt: String(row.updated_at),
  };
}
