/**
 * Schedules of recurring jobs, kept beside the jobs (one database, so that a run's jobs and the
 * schedule's move to its next slot commit together). The store decides which process fires a slot:
 * `fireSlot` names the slot it expects to be next, and only one caller finds it so — a matcher
 * restarted across a slot or a second replica racing for it finds the slot gone and does nothing.
 */
import type { JobOwnership } from '../../shared/job/model.ts';
import type {
  OverlapPolicy,
  ScheduleRunOutcome,
  ScheduleRunView,
  ScheduleState,
  ScheduleView,
} from '../../shared/schedule/schedule.ts';
import { FINAL_STATUSES } from '../../shared/job/status.ts';
import type { NewJob } from './job-store.ts';

export interface NewSchedule extends Pick<
  ScheduleView,
  'name' | 'cron' | 'timeZone' | 'overlap' | 'catchUp' | 'startAt' | 'endAt' | 'maxRuns' | 'jobs' | 'nextFireAt'
> {
  ownership: JobOwnership;
  /** `nextFireAt`: the first slot (null: none is left, the schedule is created ended). */
  at: string;
  by: string;
}

/** Who may see which schedules: the store filters, the routes decide the selection. */
export interface ScheduleSelection {
  vo?: string | undefined;
  group?: string | undefined;
  owner?: string | undefined;
}

/**
 * One slot decided by a matcher. `expectedNextFireAt` is the schedule's next slot as the caller read
 * it: if it has moved (someone fired it) or the schedule is no longer active, nothing is written.
 */
export interface SlotDecision {
  scheduleId: number;
  expectedNextFireAt: string;
  /** The slot the run stands for (with missed slots, the latest of them). */
  slotAt: string;
  at: string;
  /**
   * `submit`: store `jobs` as the run, unless overlap `skip` finds a job of an earlier run not final
   * (checked in the same transaction: the run is then recorded as skipped); `miss`: record missed slots only.
   */
  action: 'submit' | 'miss';
  jobs: NewJob[];
  overlap: OverlapPolicy;
  /**
   * Slots missed before `slotAt`: `covered` by this run (catch-up `one`), or dropped (`none`: recorded
   * as missed, under their first slot). With action `miss`, `slotAt` is the first of them.
   */
  missed: { count: number; firstAt: string; lastAt: string; countIsExact: boolean; covered: boolean } | null;
  /** Jobs of earlier runs the caller killed (overlap `replace`). */
  replacedJobIds: number[];
  /** The slot after this one, null when none is left (end time). */
  nextFireAt: string | null;
}

export type SlotOutcome =
  | { fired: false }
  | { fired: true; outcome: ScheduleRunOutcome; jobIds: number[]; taskQueueIds: number[]; state: ScheduleState };

/** A job of a schedule's run that is not final, and the pilot that holds it (to tell of a kill). */
export interface UnfinishedRunJob {
  id: number;
  status: string;
  attempt: number;
  pilotId: string | null;
}

export interface ScheduleStore {
  createSchedule(schedule: NewSchedule): Promise<ScheduleView>;
  getSchedule(id: number): Promise<ScheduleView | null>;
  /** Newest first. */
  listSchedules(selection: ScheduleSelection, limit: number): Promise<ScheduleView[]>;
  /**
   * Pauses or resumes (`nextFireAt`: the slot to resume from). Null when there is no such schedule;
   * an ended schedule is left as it is (the answer says `ended`).
   */
  setSchedulePaused(
    id: number,
    paused: boolean,
    change: { at: string; by: string; nextFireAt: string | null },
  ): Promise<ScheduleView | null>;
  /** Removes the schedule and its runs' records; its jobs stay (they keep its id). False if unknown. */
  deleteSchedule(id: number): Promise<boolean>;
  /** Active schedules whose next slot is at or before `at`, earliest first. */
  dueSchedules(at: string, limit: number): Promise<ScheduleView[]>;
  /** The earliest next slot of any active schedule (null: none). */
  earliestNextFire(): Promise<string | null>;
  /** Jobs of the schedule's runs that are not final, oldest first. */
  unfinishedRunJobs(scheduleId: number): Promise<UnfinishedRunJob[]>;
  fireSlot(decision: SlotDecision): Promise<SlotOutcome>;
  /** Newest first. */
  scheduleRuns(scheduleId: number, limit: number): Promise<ScheduleRunView[]>;
}

/** The final statuses as an SQL list, for `status NOT IN …` (both stores). */
export const FINAL_STATUSES_SQL = `(${[...FINAL_STATUSES].map((status) => `'${status}'`).join(', ')})`;
