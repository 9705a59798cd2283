/**
 * Recurring jobs: a schedule submits its job description at every slot of a cron expression in a time
 * zone. What a schedule is, what the API takes to create one, and what each slot became (a run).
 * The matcher and the CLI share these shapes.
 */
import { z } from 'zod';
import type { JobDescription } from '../job/description.ts';
import type { JobOwnership } from '../job/model.ts';
import type { JobStatus } from '../job/status.ts';

/** What a slot does while a previous run of the schedule has a job that is not final. */
export const OVERLAP_POLICIES = ['skip', 'allow', 'replace'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

/** What the slots missed while no matcher could fire them become: nothing, or one run for them all. */
export const CATCH_UP_POLICIES = ['none', 'one'] as const;
export type CatchUpPolicy = (typeof CATCH_UP_POLICIES)[number];

export type ScheduleState = 'active' | 'paused' | 'ended';

const isoTime = z.iso.datetime({ offset: true }).transform((value) => new Date(value).toISOString());

/**
 * The fields of `POST /api/schedules` other than the job: in a JSON body beside `job`, or in the
 * query string when the body is a JDL (`Content-Type: text/x-jdl`).
 */
export const scheduleFieldsSchema = z.strictObject({
  /** 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first. */
  cron: z.string().min(1).max(200),
  /** An IANA time zone name; the cron fields are read in it. */
  timeZone: z.string().min(1).max(64).default('UTC'),
  overlap: z.enum(OVERLAP_POLICIES).default('skip'),
  catchUp: z.enum(CATCH_UP_POLICIES).default('none'),
  /** No slot before this time (inclusive). */
  startAt: isoTime.optional(),
  /** No slot at or after this time. */
  endAt: isoTime.optional(),
  /** Runs submitted at most; then the schedule ends. */
  maxRuns: z.int().min(1).max(1_000_000_000).optional(),
  /** A name to find it by (not unique). */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.:@+ -]{0,127}$/, '1-128 characters of letters, digits, spaces and _.:@+-')
    .optional(),
});
export type ScheduleFields = z.output<typeof scheduleFieldsSchema>;

export interface ScheduleView extends JobOwnership {
  id: number;
  name: string | null;
  cron: string;
  timeZone: string;
  overlap: OverlapPolicy;
  catchUp: CatchUpPolicy;
  startAt: string | null;
  endAt: string | null;
  maxRuns: number | null;
  /** Runs that submitted jobs so far. */
  runs: number;
  state: ScheduleState;
  /** The next slot to fire (null once ended). While paused, the slot it would resume from. */
  nextFireAt: string | null;
  /** The last slot decided (fired, skipped or missed). */
  lastSlotAt: string | null;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
  /** The jobs each run submits: one, or the expansion of a parametric JDL. */
  jobs: JobDescription[];
}

/**
 * What became of one slot, or of a stretch of missed slots:
 *  - `submitted`: a run's jobs were stored (`jobIds`); with catch-up `one` it may stand for missed slots too;
 *  - `skipped`: overlap `skip` found the previous run unfinished (`reason` names its job);
 *  - `missed`: no matcher fired these slots in time and catch-up `none` drops them;
 *  - `failed`: the jobs could not be stored (an input sandbox purged, say): `reason` says why.
 */
export type ScheduleRunOutcome = 'submitted' | 'skipped' | 'missed' | 'failed';

export interface ScheduleRunView {
  scheduleId: number;
  /** The slot (for `missed`, the first of them). */
  slotAt: string;
  firedAt: string;
  outcome: ScheduleRunOutcome;
  reason: string | null;
  /** Slots this record stands for besides `slotAt` that were missed (catch-up `one`, or `missed`). */
  missedSlots: number;
  jobIds: number[];
  /** Jobs of earlier runs killed to make room (overlap `replace`). */
  replacedJobIds: number[];
  /** The current status of each job of the run (read when asked). */
  jobs: { id: number; status: JobStatus }[];
}
