/**
 * The schedule runner on a real SQLite file, driven by an injected clock: the clock is moved to the
 * stored next slot (as the runner's own timer would wake) or across a downtime, and `tick()` decides
 * what is due. Slots across daylight-saving changes, overlap skip and replace, catch-up none and one
 * after a downtime, the late window, end time and maximum runs.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { taskQueueDefinition } from '../../matcher/matching/task-queue-key.ts';
import { CronPlan } from '../../matcher/schedules/cron-plan.ts';
import { ScheduleRunner } from '../../matcher/schedules/schedule-runner.ts';
import type { JobStore } from '../../matcher/store/job-store.ts';
import type { NewSchedule } from '../../matcher/store/schedule-store.ts';
import { openSqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';
import { parseJobDescription } from '../../shared/job/description.ts';
import { createLogger } from '../../shared/logger.ts';
import type { ScheduleView } from '../../shared/schedule/schedule.ts';
import { alice } from '../helpers/jobs.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

class TestClock {
  constructor(public ms: number) {}
  nowMs(): number {
    return this.ms;
  }
}

describe('ScheduleRunner (injected clock, SQLite)', () => {
  let dir: string;
  let store: JobStore;
  let clock: TestClock;
  let runner: ScheduleRunner;
  let kills: { pilotId: string; jobId: number }[];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ph-schedules-'));
    store = openSqliteJobStore({ path: path.join(dir, 'matcher.sqlite') });
    clock = new TestClock(Date.parse('2026-01-01T00:00:00.000Z'));
    kills = [];
    runner = new ScheduleRunner({
      store,
      clock,
      logger: createLogger({ component: 'test', level: 'silent' }),
      windowMs: 5_000,
      pollMs: 1_000,
      jobsOf: (schedule, slotAt) =>
        schedule.jobs.map((description) => ({
          ownership: alice,
          description,
          taskQueue: taskQueueDefinition(alice, description),
          schedule: { id: schedule.id, slotAt },
        })),
      onJobsWaiting: () => {},
      onKillQueued: (pilotId, jobId) => kills.push({ pilotId, jobId }),
    });
  });
  afterEach(async () => {
    await runner.stop();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function create(fields: Partial<NewSchedule> & { cron: string }): Promise<ScheduleView> {
    const plan = CronPlan.compile({ timeZone: 'UTC', ...fields });
    const first = plan.nextAfter(clock.ms);
    return store.schedules.createSchedule({
      ownership: alice,
      name: null,
      timeZone: 'UTC',
      overlap: 'allow',
      catchUp: 'none',
      startAt: null,
      endAt: null,
      maxRuns: null,
      jobs: [parseJobDescription({ executable: '/bin/true' })],
      nextFireAt: first === null ? null : iso(first),
      at: iso(clock.ms),
      by: 'alice',
      ...fields,
    });
  }

  /** Moves the clock to the earliest stored slot (as the runner's timer wakes) and decides; null when none is left. */
  async function wakeAtNextSlot(): Promise<string | null> {
    const next = await store.schedules.earliestNextFire();
    if (next === null) return null;
    // A moment before the slot, nothing fires.
    clock.ms = Date.parse(next) - 1;
    assert.equal(await runner.tick(), 0, `nothing before ${next}`);
    clock.ms = Date.parse(next);
    assert.equal(await runner.tick(), 1, `the slot ${next} is decided`);
    return next;
  }

  async function jobSlots(scheduleId: number): Promise<string[]> {
    const page = await store.searchJobs({
      sort: [{ column: 'id', direction: 'asc' }],
      page: 1,
      perPage: 1000,
      countTotal: false,
    });
    return page.jobs.filter((job) => job.scheduleId === scheduleId).map((job) => job.scheduleSlot as string);
  }

  it('fires a daily 02:30 Europe/Paris at the right instants across both daylight-saving changes', async () => {
    clock.ms = Date.parse('2026-03-27T12:00:00.000Z');
    const spring = await create({ cron: '30 2 * * *', timeZone: 'Europe/Paris', endAt: '2026-03-31T00:00:00.000Z' });
    const fired: string[] = [];
    for (let slot = await wakeAtNextSlot(); slot !== null; slot = await wakeAtNextSlot()) fired.push(slot);
    assert.deepEqual(fired, ['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']);
    assert.deepEqual(await jobSlots(spring.id), fired);
    assert.equal((await store.schedules.getSchedule(spring.id))?.state, 'ended');

    clock.ms = Date.parse('2026-10-24T12:00:00.000Z');
    const autumn = await create({ cron: '0,30 2 * * *', timeZone: 'Europe/Paris', endAt: '2026-10-26T12:00:00.000Z' });
    const autumnFired: string[] = [];
    for (let slot = await wakeAtNextSlot(); slot !== null; slot = await wakeAtNextSlot()) autumnFired.push(slot);
    // Fixed times in the repeated hour fire once, the first time round.
    assert.deepEqual(autumnFired, [
      '2026-10-25T00:00:00.000Z',
      '2026-10-25T00:30:00.000Z',
      '2026-10-26T01:00:00.000Z',
      '2026-10-26T01:30:00.000Z',
    ]);
    assert.deepEqual(await jobSlots(autumn.id), autumnFired);
  });

  it('overlap skip never starts a run while an earlier one is not final', async () => {
    const schedule = await create({ cron: '*/10 * * * * *', overlap: 'skip' });
    await wakeAtNextSlot();
    const [first] = await store.schedules.unfinishedRunJobs(schedule.id);
    assert.ok(first);
    // The job runs at a pilot through the next slots: nothing new starts.
    const { job } = await store.claimFromTaskQueue((await store.getJob(first.id))?.taskQueueId as number, {
      pilotId: 'pilot-1',
      site: 'Site.A',
      ce: null,
      at: iso(clock.ms),
      jobType: 'User',
      maxRunning: null,
      matchingDelaySec: null,
    });
    assert.equal(job?.id, first.id);
    await store.reportStatus(first.id, 1, { status: 'Running', at: iso(clock.ms + 1000), source: 'pilot' });
    await wakeAtNextSlot();
    await wakeAtNextSlot();
    assert.equal((await jobSlots(schedule.id)).length, 1);
    const runs = await store.schedules.scheduleRuns(schedule.id, 10);
    assert.deepEqual(
      runs.map((run) => run.outcome),
      ['skipped', 'skipped', 'submitted'],
    );
    assert.match(runs[0]?.reason ?? '', new RegExp(`job ${first.id} of an earlier run is Running`));
    await store.reportStatus(first.id, 1, { status: 'Done', at: iso(clock.ms + 1000), source: 'pilot' });
    await wakeAtNextSlot();
    assert.equal((await jobSlots(schedule.id)).length, 2, 'the run after the Done one starts');
  });

  it("overlap replace kills the earlier run's jobs (telling the pilot that holds one) and starts the new run", async () => {
    const schedule = await create({ cron: '*/10 * * * * *', overlap: 'replace' });
    await wakeAtNextSlot();
    const [held] = await store.schedules.unfinishedRunJobs(schedule.id);
    assert.ok(held);
    await store.claimFromTaskQueue((await store.getJob(held.id))?.taskQueueId as number, {
      pilotId: 'pilot-7',
      site: 'Site.A',
      ce: null,
      at: iso(clock.ms),
      jobType: 'User',
      maxRunning: null,
      matchingDelaySec: null,
    });
    await wakeAtNextSlot();
    assert.equal((await store.getJob(held.id))?.status, 'Killed');
    assert.deepEqual(kills, [{ pilotId: 'pilot-7', jobId: held.id }]);
    const [latest] = await store.schedules.scheduleRuns(schedule.id, 1);
    assert.deepEqual(
      [latest?.outcome, latest?.replacedJobIds, latest?.jobs.map((job) => job.status)],
      ['submitted', [held.id], ['Waiting']],
    );
    await wakeAtNextSlot();
    const unfinished = await store.schedules.unfinishedRunJobs(schedule.id);
    assert.equal(unfinished.length, 1, 'only the newest run is left unfinished');
  });

  it('catch-up none after a downtime: the latest slot fires if it is within the window, the others are missed', async () => {
    const schedule = await create({ cron: '*/10 * * * * *' });
    const start = clock.ms;
    await wakeAtNextSlot(); // slot +10 s
    // Down from +10 s to +95 s: slots +20 … +90 passed; +90 is 5 s old, within the 5 s window.
    clock.ms = start + 95_000;
    assert.equal(await runner.tick(), 1);
    assert.deepEqual(await jobSlots(schedule.id), [iso(start + 10_000), iso(start + 90_000)]);
    const [run, missed] = await store.schedules.scheduleRuns(schedule.id, 10);
    assert.deepEqual([run?.slotAt, run?.outcome], [iso(start + 90_000), 'submitted']);
    assert.deepEqual([missed?.slotAt, missed?.outcome, missed?.missedSlots], [iso(start + 20_000), 'missed', 6]);
    // Down again from +95 s to +128 s: +100 … +120 passed, the latest is 8 s old: all missed, no run.
    clock.ms = start + 128_000;
    assert.equal(await runner.tick(), 1);
    assert.equal((await jobSlots(schedule.id)).length, 2);
    const [latest] = await store.schedules.scheduleRuns(schedule.id, 1);
    assert.deepEqual([latest?.slotAt, latest?.outcome, latest?.missedSlots], [iso(start + 100_000), 'missed', 2]);
    assert.equal((await store.schedules.getSchedule(schedule.id))?.nextFireAt, iso(start + 130_000));
    // And the schedule goes on.
    await wakeAtNextSlot();
    assert.equal((await jobSlots(schedule.id)).at(-1), iso(start + 130_000));
  });

  it('catch-up one after a downtime: one run, at the latest slot, stands for all the missed ones', async () => {
    const schedule = await create({ cron: '*/10 * * * * *', catchUp: 'one' });
    const start = clock.ms;
    await wakeAtNextSlot();
    clock.ms = start + 3_600_000 + 7_000; // an hour down, the latest slot 7 s old (beyond the window)
    assert.equal(await runner.tick(), 1);
    assert.equal(await runner.tick(), 0, 'decided once');
    assert.deepEqual(await jobSlots(schedule.id), [iso(start + 10_000), iso(start + 3_600_000)]);
    const [run] = await store.schedules.scheduleRuns(schedule.id, 1);
    assert.deepEqual([run?.outcome, run?.missedSlots], ['submitted', 358]);
    assert.match(run?.reason ?? '', /catch-up one: also stands for 358 slots/);
  });

  it('respects the end time and the maximum number of runs', async () => {
    const start = clock.ms;
    const ending = await create({ cron: '*/10 * * * * *', endAt: iso(start + 35_000) });
    const capped = await create({ cron: '*/10 * * * * *', maxRuns: 2 });
    clock.ms = start + 10_000;
    assert.equal(await runner.tick(), 2);
    clock.ms = start + 20_000;
    assert.equal(await runner.tick(), 2);
    clock.ms = start + 30_000;
    assert.equal(await runner.tick(), 1, 'the capped one has ended');
    clock.ms = start + 40_000;
    assert.equal(await runner.tick(), 0, 'past the end time');
    clock.ms = start + 600_000;
    assert.equal(await runner.tick(), 0);
    assert.equal((await jobSlots(ending.id)).length, 3);
    assert.equal((await jobSlots(capped.id)).length, 2);
    for (const id of [ending.id, capped.id]) assert.equal((await store.schedules.getSchedule(id))?.state, 'ended');
  });

  it('its own timer wakes at the stored slot', async () => {
    clock.ms = Date.now();
    // A real-time clock for this one: the timer sleeps until the stored slot.
    (clock as { nowMs(): number }).nowMs = () => Date.now();
    const schedule = await create({ cron: '* * * * * *' });
    runner.start();
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error('no run within 5 s')), 5_000);
      const poll = setInterval(() => {
        void jobSlots(schedule.id).then((slots) => {
          if (slots.length >= 2) {
            clearInterval(poll);
            clearTimeout(deadline);
            resolve();
          }
        });
      }, 50);
    });
    const slots = await jobSlots(schedule.id);
    assert.equal(new Set(slots).size, slots.length, 'no slot twice');
  });
});
