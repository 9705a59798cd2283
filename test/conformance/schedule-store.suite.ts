/**
 * One behavioural suite for every ScheduleStore (SQLite, PostgreSQL). The racing firers are other
 * processes on the SQLite file, other connection pools on PostgreSQL (as other matcher replicas), so
 * that "one slot, one run" could fail if the store did not decide it.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { JobStore, NewJob } from '../../matcher/store/job-store.ts';
import type { NewSchedule, ScheduleStore, SlotDecision } from '../../matcher/store/schedule-store.ts';
import { parseJobDescription } from '../../shared/job/description.ts';
import type { ScheduleView } from '../../shared/schedule/schedule.ts';
import { taskQueueDefinition } from '../../matcher/matching/task-queue-key.ts';
import { alice, bob, carol } from '../helpers/jobs.ts';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (seconds: number): string => new Date(T0 + seconds * 1000).toISOString();

export interface ScheduleStoreFixture {
  store: JobStore;
  /** Other firers on the same database, each with its own connection(s) or process. */
  firers(count: number): Promise<(Pick<ScheduleStore, 'fireSlot'> & { close(): Promise<void> })[]>;
}

function newSchedule(overrides: Partial<NewSchedule> = {}): NewSchedule {
  return {
    ownership: alice,
    name: 'nightly',
    cron: '*/10 * * * * *',
    timeZone: 'UTC',
    overlap: 'allow',
    catchUp: 'none',
    startAt: null,
    endAt: null,
    maxRuns: null,
    jobs: [parseJobDescription({ executable: '/bin/true', name: 'fetch' })],
    nextFireAt: at(10),
    at: at(0),
    by: 'alice',
    ...overrides,
  };
}

function runJobs(schedule: ScheduleView, slotAt: string): NewJob[] {
  const ownership = { vo: schedule.vo, group: schedule.group, owner: schedule.owner };
  return schedule.jobs.map((description) => ({
    ownership,
    description,
    taskQueue: taskQueueDefinition(ownership, description),
    schedule: { id: schedule.id, slotAt },
  }));
}

function submitSlot(schedule: ScheduleView, slotS: number, nextS: number | null, extra: Partial<SlotDecision> = {}) {
  return {
    scheduleId: schedule.id,
    expectedNextFireAt: at(slotS),
    slotAt: at(slotS),
    at: at(slotS),
    action: 'submit' as const,
    jobs: runJobs(schedule, at(slotS)),
    overlap: schedule.overlap,
    missed: null,
    replacedJobIds: [],
    nextFireAt: nextS === null ? null : at(nextS),
    ...extra,
  };
}

export function scheduleStoreSuite(name: string, openFixture: () => Promise<ScheduleStoreFixture>): void {
  describe(`ScheduleStore conformance: ${name}`, () => {
    let fixture: ScheduleStoreFixture;
    let store: JobStore;
    let schedules: ScheduleStore;
    beforeEach(async () => {
      fixture = await openFixture();
      store = fixture.store;
      schedules = store.schedules;
    });
    afterEach(() => store.close());

    it('keeps what it was given; lists by owner, group or VO, newest first; none left means ended', async () => {
      const a = await schedules.createSchedule(newSchedule());
      const b = await schedules.createSchedule(newSchedule({ ownership: bob, name: null }));
      const c = await schedules.createSchedule(newSchedule({ ownership: carol, nextFireAt: null }));
      assert.deepEqual(
        {
          owner: a.owner,
          group: a.group,
          cron: a.cron,
          state: a.state,
          next: a.nextFireAt,
          runs: a.runs,
          jobs: a.jobs.map((job) => job.name),
        },
        {
          owner: 'alice',
          group: alice.group,
          cron: '*/10 * * * * *',
          state: 'active',
          next: at(10),
          runs: 0,
          jobs: ['fetch'],
        },
      );
      assert.equal(c.state, 'ended');
      assert.deepEqual((await schedules.getSchedule(a.id))?.id, a.id);
      assert.equal(await schedules.getSchedule(999_999), null);
      assert.deepEqual(
        (await schedules.listSchedules({ vo: 'vo-a' }, 10)).map((s) => s.id),
        [b.id, a.id],
      );
      assert.deepEqual(
        (await schedules.listSchedules({ vo: 'vo-a', owner: 'alice' }, 10)).map((s) => s.id),
        [a.id],
      );
      assert.deepEqual(
        (await schedules.listSchedules({}, 10)).map((s) => s.id),
        [c.id, b.id, a.id],
      );
      assert.deepEqual(
        (await schedules.dueSchedules(at(10), 10)).map((s) => s.id),
        [a.id, b.id],
        'the ended one is never due',
      );
      assert.deepEqual(await schedules.dueSchedules(at(9), 10), []);
      assert.equal(await schedules.earliestNextFire(), at(10));
    });

    it("a fired slot stores the run's jobs, tagged with schedule and slot, and moves the schedule on", async () => {
      const schedule = await schedules.createSchedule(newSchedule());
      const fired = await schedules.fireSlot(submitSlot(schedule, 10, 20));
      assert.equal(fired.fired, true);
      assert.ok(fired.fired);
      assert.equal(fired.outcome, 'submitted');
      assert.equal(fired.jobIds.length, 1);
      const job = await store.getJob(fired.jobIds[0] as number);
      assert.deepEqual(
        [job?.status, job?.scheduleId, job?.scheduleSlot, job?.owner],
        ['Waiting', schedule.id, at(10), 'alice'],
      );
      const moved = await schedules.getSchedule(schedule.id);
      assert.deepEqual([moved?.nextFireAt, moved?.lastSlotAt, moved?.runs], [at(20), at(10), 1]);
      const [run] = await schedules.scheduleRuns(schedule.id, 10);
      assert.deepEqual(run, {
        scheduleId: schedule.id,
        slotAt: at(10),
        firedAt: at(10),
        outcome: 'submitted',
        reason: null,
        missedSlots: 0,
        jobIds: fired.jobIds,
        replacedJobIds: [],
        jobs: [{ id: fired.jobIds[0], status: 'Waiting' }],
      });
      // The same slot again (a restarted matcher that read the old next slot): nothing happens.
      assert.deepEqual(await schedules.fireSlot(submitSlot(schedule, 10, 20)), { fired: false });
      assert.equal((await schedules.scheduleRuns(schedule.id, 10)).length, 1);
      assert.equal(
        (
          await store.searchJobs({
            sort: [{ column: 'id', direction: 'asc' }],
            page: 1,
            perPage: 100,
            countTotal: true,
          })
        ).total,
        1,
      );
    });

    it('of several firers racing for one slot, exactly one stores a run', async () => {
      const schedule = await schedules.createSchedule(
        newSchedule({
          jobs: [
            parseJobDescription({ executable: '/bin/true', name: 'a' }),
            parseJobDescription({ executable: '/bin/true', name: 'b' }),
          ],
        }),
      );
      const firers = await fixture.firers(4);
      try {
        const outcomes = await Promise.all(firers.map((firer) => firer.fireSlot(submitSlot(schedule, 10, 20))));
        assert.equal(outcomes.filter((outcome) => outcome.fired).length, 1, JSON.stringify(outcomes));
      } finally {
        await Promise.all(firers.map((firer) => firer.close()));
      }
      const page = await store.searchJobs({
        sort: [{ column: 'id', direction: 'asc' }],
        page: 1,
        perPage: 100,
        countTotal: true,
      });
      assert.equal(page.total, 2, 'one run of two jobs');
      assert.equal((await schedules.getSchedule(schedule.id))?.runs, 1);
    });

    it('overlap skip: an unfinished job of an earlier run makes the slot skipped, a final one lets it run', async () => {
      const schedule = await schedules.createSchedule(newSchedule({ overlap: 'skip' }));
      const first = await schedules.fireSlot(submitSlot(schedule, 10, 20));
      assert.ok(first.fired && first.outcome === 'submitted');
      const jobId = first.jobIds[0] as number;
      const skipped = await schedules.fireSlot(submitSlot(schedule, 20, 30));
      assert.deepEqual(skipped.fired && [skipped.outcome, skipped.jobIds], ['skipped', []]);
      const [record] = await schedules.scheduleRuns(schedule.id, 1);
      assert.equal(record?.outcome, 'skipped');
      assert.match(record?.reason ?? '', new RegExp(`job ${jobId} of an earlier run is Waiting`));
      assert.deepEqual(await schedules.unfinishedRunJobs(schedule.id), [
        { id: jobId, status: 'Waiting', attempt: 1, pilotId: null },
      ]);
      await store.killJob(jobId, at(25), 'alice');
      assert.deepEqual(await schedules.unfinishedRunJobs(schedule.id), []);
      const third = await schedules.fireSlot(submitSlot(schedule, 30, 40));
      assert.deepEqual(third.fired && third.outcome, 'submitted');
      assert.equal((await schedules.getSchedule(schedule.id))?.runs, 2, 'a skipped slot is not a run');
    });

    it('ends after its maximum number of runs, or when no slot is left', async () => {
      const limited = await schedules.createSchedule(newSchedule({ maxRuns: 2 }));
      const one = await schedules.fireSlot(submitSlot(limited, 10, 20));
      assert.deepEqual(one.fired && one.state, 'active');
      const two = await schedules.fireSlot(submitSlot(limited, 20, 30));
      assert.deepEqual(two.fired && two.state, 'ended');
      assert.equal((await schedules.getSchedule(limited.id))?.nextFireAt, null, 'an ended schedule has no next slot');
      assert.deepEqual(await schedules.fireSlot(submitSlot(limited, 30, 40)), { fired: false });
      const ending = await schedules.createSchedule(newSchedule());
      const last = await schedules.fireSlot(submitSlot(ending, 10, null));
      assert.deepEqual(last.fired && last.state, 'ended');
      const after = await schedules.getSchedule(ending.id);
      assert.deepEqual([after?.state, after?.nextFireAt], ['ended', null]);
      assert.deepEqual(await schedules.dueSchedules(at(1000), 10), []);
    });

    it('records missed slots: dropped (catch-up none) beside the run, covered by it (one), or alone', async () => {
      const dropping = await schedules.createSchedule(newSchedule());
      await schedules.fireSlot(
        submitSlot(dropping, 10, 60, {
          slotAt: at(50),
          at: at(51),
          jobs: runJobs(dropping, at(50)),
          missed: { count: 4, firstAt: at(10), lastAt: at(40), countIsExact: true, covered: false },
        }),
      );
      const dropped = await schedules.scheduleRuns(dropping.id, 10);
      assert.deepEqual(
        dropped.map((run) => [run.slotAt, run.outcome, run.missedSlots, run.jobIds.length]),
        [
          [at(50), 'submitted', 0, 1],
          [at(10), 'missed', 3, 0],
        ],
      );
      assert.match(dropped[1]?.reason ?? '', /4 slots/);

      const covering = await schedules.createSchedule(newSchedule({ catchUp: 'one' }));
      await schedules.fireSlot(
        submitSlot(covering, 10, 60, {
          slotAt: at(50),
          jobs: runJobs(covering, at(50)),
          missed: { count: 4, firstAt: at(10), lastAt: at(40), countIsExact: true, covered: true },
        }),
      );
      const covered = await schedules.scheduleRuns(covering.id, 10);
      assert.deepEqual(
        covered.map((run) => [run.slotAt, run.outcome, run.missedSlots]),
        [[at(50), 'submitted', 4]],
      );
      assert.match(covered[0]?.reason ?? '', /catch-up one/);

      const missing = await schedules.createSchedule(newSchedule());
      const missed = await schedules.fireSlot({
        ...submitSlot(missing, 10, 60),
        action: 'miss',
        jobs: [],
        missed: { count: 5, firstAt: at(10), lastAt: at(50), countIsExact: true, covered: false },
      });
      assert.deepEqual(missed.fired && [missed.outcome, missed.jobIds], ['missed', []]);
      const after = await schedules.getSchedule(missing.id);
      assert.deepEqual([after?.nextFireAt, after?.runs], [at(60), 0]);
    });

    it('a paused schedule is not due and its slot cannot be fired; resumed, it fires from the slot given', async () => {
      const schedule = await schedules.createSchedule(newSchedule());
      const paused = await schedules.setSchedulePaused(schedule.id, true, {
        at: at(5),
        by: 'alice',
        nextFireAt: at(10),
      });
      assert.equal(paused?.state, 'paused');
      assert.deepEqual(await schedules.dueSchedules(at(100), 10), []);
      assert.deepEqual(await schedules.fireSlot(submitSlot(schedule, 10, 20)), { fired: false });
      const resumed = await schedules.setSchedulePaused(schedule.id, false, {
        at: at(95),
        by: 'alice',
        nextFireAt: at(100),
      });
      assert.deepEqual([resumed?.state, resumed?.nextFireAt], ['active', at(100)]);
      assert.equal((await schedules.dueSchedules(at(100), 10))[0]?.id, schedule.id);
      assert.equal(await schedules.setSchedulePaused(424_242, true, { at: at(1), by: 'x', nextFireAt: null }), null);
    });

    it('the records of slots decided before the finished-job cutoff are purged with those jobs', async () => {
      const schedule = await schedules.createSchedule(newSchedule());
      await schedules.fireSlot(submitSlot(schedule, 10, 20));
      await schedules.fireSlot(submitSlot(schedule, 20, 30));
      await store.purgeJobs({ finalBefore: at(15), deletedBefore: null, limit: 100 });
      assert.deepEqual(
        (await schedules.scheduleRuns(schedule.id, 10)).map((run) => run.slotAt),
        [at(20)],
      );
      await store.purgeJobs({ finalBefore: null, deletedBefore: at(100), limit: 100 });
      assert.equal(
        (await schedules.scheduleRuns(schedule.id, 10)).length,
        1,
        'no cutoff for finished jobs, none purged',
      );
    });

    it('delete removes the schedule and its records; its jobs stay and still name it', async () => {
      const schedule = await schedules.createSchedule(newSchedule());
      const fired = await schedules.fireSlot(submitSlot(schedule, 10, 20));
      assert.ok(fired.fired);
      assert.equal(await schedules.deleteSchedule(schedule.id), true);
      assert.equal(await schedules.getSchedule(schedule.id), null);
      assert.deepEqual(await schedules.scheduleRuns(schedule.id, 10), []);
      assert.equal(await schedules.deleteSchedule(schedule.id), false);
      assert.equal((await store.getJob(fired.jobIds[0] as number))?.scheduleId, schedule.id);
    });
  });
}
