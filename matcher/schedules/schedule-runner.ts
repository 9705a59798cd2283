/**
 * Fires the slots of recurring schedules. Each matcher runs one; the store decides which of them fires
 * a slot (ScheduleStore.fireSlot moves the schedule's next slot only if it is still the one read), so
 * a restart across a slot or a second replica never fires it twice. The timer is only a wake-up: what
 * is due is read from the stored next-slot times, against the injected clock.
 *
 * At a wake-up, the due slots of a schedule are the stored next one and every later one up to now.
 * The latest of them is on time when it is at most `windowMs` old. Catch-up `none` fires the latest if
 * it is on time and records the others as missed; catch-up `one` fires one run, at the latest slot,
 * that stands for all of them. Overlap `skip` is checked by the store in the firing transaction;
 * `replace` kills the unfinished jobs of earlier runs first.
 */
import type { Clock } from '../../shared/clock.ts';
import { toPilothouseError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ScheduleView } from '../../shared/schedule/schedule.ts';
import type { JobStore, NewJob } from '../store/job-store.ts';
import type { SlotDecision } from '../store/schedule-store.ts';
import { CronPlan } from './cron-plan.ts';

/** Schedules decided per store read; more are read at once after. */
const DUE_PER_READ = 100;
/** Missed slots counted one by one at most (a longer downtime says "N or more"). */
const MISSED_COUNTED_AT_MOST = 10_000;

export const DEFAULT_SCHEDULE_WINDOW_SEC = 60;
export const DEFAULT_SCHEDULE_POLL_MS = 1_000;
/** Fast enough for a schedule every few seconds (the API's own example); an operator raises it. */
export const DEFAULT_SCHEDULE_MIN_INTERVAL_SEC = 5;

export interface ScheduleRunnerOptions {
  store: JobStore;
  clock: Clock;
  logger: Logger;
  /** How late a slot may still fire; an older one is missed (catch-up decides). */
  windowMs: number;
  /** Longest sleep between two reads of the store (schedules made or resumed by other replicas). */
  pollMs: number;
  /** The jobs of one run, with their task queues, tagged with the schedule and slot. */
  jobsOf(schedule: ScheduleView, slotAt: string): NewJob[];
  /** Told after a run's jobs are stored (wake the pilots). */
  onJobsWaiting(taskQueueIds: number[]): void;
  /** Told when killing a job queued a command for the pilot that holds it. */
  onKillQueued(pilotId: string, jobId: number, attempt: number): void;
}

export class ScheduleRunner {
  readonly #options: ScheduleRunnerOptions;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<number> | null = null;
  #stopped = true;

  constructor(options: ScheduleRunnerOptions) {
    this.#options = options;
  }

  start(): void {
    this.#stopped = false;
    this.poke();
  }

  /** Looks at the store now (a schedule was made or resumed here). */
  poke(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#wake(), 0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#ticking?.catch(() => undefined);
  }

  /** Decides every due slot; resolves with how many schedules fired or skipped a slot. */
  tick(): Promise<number> {
    this.#ticking ??= this.#decideDue().finally(() => {
      this.#ticking = null;
    });
    return this.#ticking;
  }

  async #wake(): Promise<void> {
    let delayMs = this.#options.pollMs;
    try {
      const decided = await this.tick();
      const earliest = await this.#options.store.schedules.earliestNextFire();
      if (decided >= DUE_PER_READ) delayMs = 0;
      else if (earliest !== null) {
        delayMs = Math.min(delayMs, Math.max(0, Date.parse(earliest) - this.#options.clock.nowMs()));
      }
    } catch (error) {
      const coded = toPilothouseError(error);
      this.#options.logger.warn({ code: coded.code, err: coded.message }, 'schedule pass failed');
    }
    if (!this.#stopped) this.#timer = setTimeout(() => void this.#wake(), delayMs);
  }

  async #decideDue(): Promise<number> {
    const nowMs = this.#options.clock.nowMs();
    const due = await this.#options.store.schedules.dueSchedules(new Date(nowMs).toISOString(), DUE_PER_READ);
    let decided = 0;
    for (const schedule of due) {
      try {
        if (await this.#decide(schedule, nowMs)) decided += 1;
      } catch (error) {
        const coded = toPilothouseError(error);
        this.#options.logger.warn(
          { scheduleId: schedule.id, code: coded.code, err: coded.message },
          'schedule slot not decided',
        );
      }
    }
    return decided;
  }

  async #decide(schedule: ScheduleView, nowMs: number): Promise<boolean> {
    const { store, logger } = this.#options;
    const expectedAt = schedule.nextFireAt as string;
    const plan = CronPlan.compile(schedule);
    const expectedMs = Date.parse(expectedAt);
    const later = plan.slotsBetween(expectedMs, nowMs, MISSED_COUNTED_AT_MOST);
    const latestMs = later?.lastMs ?? expectedMs;
    const dueCount = 1 + (later?.count ?? 0);
    const countIsExact = later?.countIsExact ?? true;
    const onTime = nowMs - latestMs <= this.#options.windowMs;
    const iso = (ms: number) => new Date(ms).toISOString();
    const at = iso(nowMs);
    const nextMs = plan.nextAfter(latestMs);
    const nextFireAt = nextMs === null ? null : iso(nextMs);

    let decision: SlotDecision;
    const base = { scheduleId: schedule.id, expectedNextFireAt: expectedAt, at, overlap: schedule.overlap, nextFireAt };
    if (schedule.catchUp === 'none' && !onTime) {
      decision = {
        ...base,
        slotAt: expectedAt,
        action: 'miss',
        jobs: [],
        missed: { count: dueCount, firstAt: expectedAt, lastAt: iso(latestMs), countIsExact, covered: false },
        replacedJobIds: [],
      };
    } else {
      const slotAt = iso(latestMs);
      // The due slots before the latest: the stored one up to the one before the latest.
      const beforeLatestMs = later === null ? null : (later.beforeLastMs ?? expectedMs);
      const replacedJobIds = schedule.overlap === 'replace' ? await this.#killUnfinished(schedule, at) : [];
      decision = {
        ...base,
        slotAt,
        action: 'submit',
        jobs: this.#options.jobsOf(schedule, slotAt),
        missed:
          beforeLatestMs === null
            ? null
            : {
                count: dueCount - 1,
                firstAt: expectedAt,
                lastAt: iso(beforeLatestMs),
                countIsExact,
                covered: schedule.catchUp === 'one',
              },
        replacedJobIds,
      };
    }
    const outcome = await store.schedules.fireSlot(decision);
    if (!outcome.fired) return false; // another replica (or a pause) got there first
    if (outcome.taskQueueIds.length > 0) this.#options.onJobsWaiting(outcome.taskQueueIds);
    logger.info(
      {
        scheduleId: schedule.id,
        slotAt: decision.slotAt,
        outcome: outcome.outcome,
        jobIds: outcome.jobIds,
        missedSlots: decision.missed?.count ?? 0,
        state: outcome.state,
      },
      'schedule slot decided',
    );
    return true;
  }

  /** Overlap `replace`: the earlier runs' unfinished jobs are killed before the new run. */
  async #killUnfinished(schedule: ScheduleView, at: string): Promise<number[]> {
    const { store } = this.#options;
    const unfinished = await store.schedules.unfinishedRunJobs(schedule.id);
    for (const job of unfinished) {
      const outcome = await store.killJob(job.id, at, `schedule ${schedule.id} (overlap replace)`);
      if (outcome.commandQueued && job.pilotId !== null) this.#options.onKillQueued(job.pilotId, job.id, job.attempt);
    }
    return unfinished.map((job) => job.id);
  }
}
