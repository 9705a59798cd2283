/** Row ↔ domain mapping of schedules and their runs, and what a decided slot records (both stores). */
import type { JobDescription } from '../../shared/job/description.ts';
import type { JobStatus } from '../../shared/job/status.ts';
import type {
  CatchUpPolicy,
  OverlapPolicy,
  ScheduleRunOutcome,
  ScheduleRunView,
  ScheduleState,
  ScheduleView,
} from '../../shared/schedule/schedule.ts';
import type { ScheduleSelection, SlotDecision, UnfinishedRunJob } from './schedule-store.ts';

export interface ScheduleRow {
  id: number | string;
  vo: string;
  grp: string;
  owner: string;
  name: string | null;
  cron: string;
  time_zone: string;
  overlap: string;
  catch_up: string;
  start_at: string | null;
  end_at: string | null;
  max_runs: number | null;
  runs: number;
  state: string;
  next_fire_at: string | null;
  last_slot_at: string | null;
  jobs: string;
  created_at: string;
  created_by: string;
  updated_at: string;
}

export function scheduleFromRow(row: ScheduleRow): ScheduleView {
  return {
    id: Number(row.id),
    vo: row.vo,
    group: row.grp,
    owner: row.owner,
    name: row.name,
    cron: row.cron,
    timeZone: row.time_zone,
    overlap: row.overlap as OverlapPolicy,
    catchUp: row.catch_up as CatchUpPolicy,
    startAt: row.start_at,
    endAt: row.end_at,
    maxRuns: row.max_runs === null ? null : Number(row.max_runs),
    runs: Number(row.runs),
    state: row.state as ScheduleState,
    nextFireAt: row.next_fire_at,
    lastSlotAt: row.last_slot_at,
    createdAt: row.created_at,
    createdBy: row.created_by,
    updatedAt: row.updated_at,
    jobs: JSON.parse(row.jobs) as JobDescription[],
  };
}

/** A schedule's run records with their jobs (`schedule_slot` names the run a job belongs to). */
export function runsFromRows(
  runs: Record<string, unknown>[],
  jobs: { id: number | string; status: string; schedule_slot: string }[],
): ScheduleRunView[] {
  const bySlot = new Map<string, { id: number | string; status: string }[]>();
  for (const job of jobs) bySlot.set(job.schedule_slot, [...(bySlot.get(job.schedule_slot) ?? []), job]);
  return runs.map((row) => runFromRow(row, bySlot.get(String(row.slot_at)) ?? []));
}

function runFromRow(row: Record<string, unknown>, jobs: { id: number | string; status: string }[]): ScheduleRunView {
  return {
    scheduleId: Number(row.schedule_id),
    slotAt: String(row.slot_at),
    firedAt: String(row.fired_at),
    outcome: row.outcome as ScheduleRunOutcome,
    reason: row.reason === null || row.reason === undefined ? null : String(row.reason),
    missedSlots: Number(row.missed_slots),
    jobIds: JSON.parse(String(row.job_ids)) as number[],
    replacedJobIds: JSON.parse(String(row.replaced_job_ids)) as number[],
    jobs: jobs.map((job) => ({ id: Number(job.id), status: job.status as JobStatus })),
  };
}

/** The state a schedule is stored in: created or resumed with no slot left, it has ended. */
export function scheduleState(paused: boolean, nextFireAt: string | null): ScheduleState {
  return paused ? 'paused' : nextFireAt === null ? 'ended' : 'active';
}

export interface UnfinishedJobRow {
  id: number | string;
  status: string;
  attempt: number;
  pilot_id: string | null;
}

export function unfinishedFromRow(row: UnfinishedJobRow): UnfinishedRunJob {
  return { id: Number(row.id), status: row.status, attempt: Number(row.attempt), pilotId: row.pilot_id };
}

/** The parameters of a schedule_runs row (named as both stores' statements take them). */
export interface RunRecord {
  scheduleId: number;
  slotAt: string;
  firedAt: string;
  outcome: ScheduleRunOutcome;
  reason: string | null;
  missedSlots: number;
  jobIds: string;
  replacedJobIds: string;
}

export interface SlotRecord {
  outcome: ScheduleRunOutcome;
  reason: string | null;
  /** Missed slots the main record stands for besides its own. */
  missedSlots: number;
  /** With catch-up `none` and a run (or a skip) for the current slot: the dropped slots' own record. */
  missedRecord: RunRecord | null;
}

function stretch(missed: NonNullable<SlotDecision['missed']>): string {
  const count = `${missed.count}${missed.countIsExact ? '' : ' or more'}`;
  return missed.count === 1 ? `1 slot (${missed.firstAt})` : `${count} slots (${missed.firstAt} to ${missed.lastAt})`;
}

/**
 * What a decided slot records, before the jobs are stored: `firstUnfinished` is the oldest job of an
 * earlier run that is not final, looked up only for overlap `skip`.
 */
export function decideSlotRecord(
  decision: SlotDecision,
  firstUnfinished: { id: number; status: string } | null,
): SlotRecord {
  const missed = decision.missed;
  if (decision.action === 'miss') {
    return {
      outcome: 'missed',
      reason: missed ? `no matcher fired ${stretch(missed)} in time; catch-up none drops them` : 'missed',
      missedSlots: missed ? missed.count - 1 : 0,
      missedRecord: null,
    };
  }
  const dropped =
    missed && !missed.covered
      ? {
          scheduleId: decision.scheduleId,
          slotAt: missed.firstAt,
          firedAt: decision.at,
          outcome: 'missed' as const,
          reason: `no matcher fired ${stretch(missed)} in time; catch-up none drops them`,
          missedSlots: missed.count - 1,
          jobIds: '[]',
          replacedJobIds: '[]',
        }
      : null;
  const covered = missed?.covered ? missed.count : 0;
  if (firstUnfinished) {
    return {
      outcome: 'skipped',
      reason: `job ${firstUnfinished.id} of an earlier run is ${firstUnfinished.status} (overlap skip)`,
      missedSlots: covered,
      missedRecord: dropped,
    };
  }
  return {
    outcome: 'submitted',
    reason: covered > 0 && missed ? `catch-up one: also stands for ${stretch(missed)} missed` : null,
    missedSlots: covered,
    missedRecord: dropped,
  };
}

/** The record of the slot itself, once its jobs are stored (or failed to be). */
export function slotRunRecord(decision: SlotDecision, record: SlotRecord, jobIds: number[]): RunRecord {
  return {
    scheduleId: decision.scheduleId,
    slotAt: decision.slotAt,
    firedAt: decision.at,
    outcome: record.outcome,
    reason: record.reason,
    missedSlots: record.missedSlots,
    jobIds: JSON.stringify(jobIds),
    replacedJobIds: JSON.stringify(decision.replacedJobIds),
  };
}

/** The columns a selection names, with their values (both stores write their own placeholders). */
export function selectionColumns(selection: ScheduleSelection): [column: string, value: string][] {
  const pairs: [string, string | undefined][] = [
    ['vo', selection.vo],
    ['grp', selection.group],
    ['owner', selection.owner],
  ];
  return pairs.filter((pair): pair is [string, string] => pair[1] !== undefined);
}
