/**
 * Queue administration, the same on every JobStore: a paused TQ gives no job to any claim and its
 * waiting jobs say why (in their minor status and history), jobs filed into it while paused too, and
 * it resumes where it was; boosts and priorities are written into the history of the jobs they touch;
 * settings keep every version, and a replacement based on an old version changes nothing.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { ClaimRequest, JobStore } from '../../matcher/store/job-store.ts';
import { PAUSED_MINOR_STATUS, WAITING_MINOR_STATUS } from '../../matcher/store/queue-administration.ts';
import { alice, bob, newJob } from '../helpers/jobs.ts';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (seconds: number): string => new Date(T0 + seconds * 1000).toISOString();
const claim = (pilotId: string, seconds = 10): ClaimRequest => ({
  pilotId,
  site: 'Site.A',
  ce: null,
  at: at(seconds),
  jobType: 'User',
  maxRunning: null,
  matchingDelaySec: null,
});

export function queueAdminSuite(name: string, openStore: () => Promise<JobStore>): void {
  describe(`queue administration conformance: ${name}`, () => {
    let store: JobStore;
    beforeEach(async () => {
      store = await openStore();
    });
    afterEach(() => store.close());

    it('a paused TQ gives no job, says so to the claim, and gives them all after resume in the same order', async () => {
      const { jobIds, taskQueueIds } = await store.submitJobs([newJob(alice), newJob(alice), newJob(alice)], at(0));
      const tq = taskQueueIds[0] as number;
      const paused = await store.queueAdmin.setTaskQueuePaused(
        tq,
        { reason: 'bad input files' },
        { at: at(1), by: 'admin' },
      );
      assert.equal(paused?.changed, true);
      assert.equal(paused?.jobs, 3);
      assert.deepEqual(paused?.taskQueue.paused, { at: at(1), by: 'admin', reason: 'bad input files' });
      for (const limited of [claim('p1'), { ...claim('p2'), maxRunning: 10 }]) {
        const refused = await store.claimFromTaskQueue(tq, limited);
        assert.equal(refused.job, null);
        assert.equal(refused.job === null && refused.reason, 'paused');
        assert.equal(refused.taskQueue.paused, true);
        assert.equal(refused.taskQueue.waitingJobs, 3, 'the jobs stay where they were');
      }
      const job = await store.getJob(jobIds[0] as number);
      assert.deepEqual([job?.status, job?.minorStatus], ['Waiting', PAUSED_MINOR_STATUS]);
      const last = (await store.getJobHistory(jobIds[0] as number)).at(-1);
      assert.deepEqual(
        { status: last?.status, minor: last?.minorStatus, source: last?.source, note: last?.note },
        {
          status: 'Waiting',
          minor: PAUSED_MINOR_STATUS,
          source: 'admin',
          note: `task queue ${tq} paused: bad input files`,
        },
      );
      // A job filed into the paused TQ waits paused too.
      const late = (await store.submitJobs([newJob(alice)], at(2))).jobIds[0] as number;
      assert.equal((await store.getJob(late))?.minorStatus, PAUSED_MINOR_STATUS);
      assert.equal((await store.getJobHistory(late)).at(-1)?.minorStatus, PAUSED_MINOR_STATUS);

      const again = await store.queueAdmin.setTaskQueuePaused(tq, { reason: 'twice' }, { at: at(3), by: 'admin' });
      assert.equal(again?.changed, false, 'pausing a paused TQ changes nothing');
      const resumed = await store.queueAdmin.setTaskQueuePaused(tq, null, { at: at(4), by: 'admin2' });
      assert.deepEqual([resumed?.changed, resumed?.jobs, resumed?.taskQueue.paused], [true, 4, null]);
      assert.equal((await store.getJob(late))?.minorStatus, WAITING_MINOR_STATUS);
      const taken: number[] = [];
      for (let i = 0; i < 4; i += 1) taken.push((await store.claimFromTaskQueue(tq, claim(`q${i}`, 20))).job?.id ?? 0);
      assert.deepEqual(taken, [...jobIds, late]);
    });

    it('pausing or boosting an unknown TQ answers null; a boost is kept and written into the waiting jobs’ history', async () => {
      assert.equal(await store.queueAdmin.setTaskQueuePaused(999_999, { reason: 'x' }, { at: at(1), by: 'a' }), null);
      assert.equal(await store.queueAdmin.setTaskQueueBoost(999_999, 5, { at: at(1), by: 'a' }), null);
      const { jobIds, taskQueueIds } = await store.submitJobs([newJob(bob), newJob(bob)], at(0));
      const tq = taskQueueIds[0] as number;
      const boosted = await store.queueAdmin.setTaskQueueBoost(tq, 7, { at: at(2), by: 'admin' });
      assert.deepEqual([boosted?.changed, boosted?.jobs, boosted?.taskQueue.boost], [true, 2, 7]);
      assert.equal((await store.getTaskQueue(tq))?.boost, 7);
      assert.equal((await store.listTaskQueues({})).find((view) => view.id === tq)?.boost, 7);
      const last = (await store.getJobHistory(jobIds[1] as number)).at(-1);
      assert.deepEqual([last?.minorStatus, last?.note], [WAITING_MINOR_STATUS, `task queue ${tq} boost 0 → 7`]);
      assert.equal((await store.queueAdmin.setTaskQueueBoost(tq, 7, { at: at(3), by: 'admin' }))?.changed, false);
    });

    it('a new user priority reorders the waiting jobs of a TQ, skips final jobs, and is in each history', async () => {
      const { jobIds, taskQueueIds } = await store.submitJobs([newJob(alice), newJob(alice), newJob(alice)], at(0));
      const [first, second, third] = jobIds as [number, number, number];
      await store.killJob(first, at(1), 'alice');
      const result = await store.queueAdmin.setJobPriority([first, third, 424_242], 9, { at: at(2), by: 'alice' });
      assert.deepEqual(result, {
        changed: [{ jobId: third, status: 'Waiting', previous: 1, priority: 9 }],
        taskQueueIds,
      });
      const stats = await store.getTaskQueue(taskQueueIds[0] as number);
      assert.deepEqual([stats?.topPriority, stats?.nextJobId], [9, third]);
      assert.equal((await store.claimFromTaskQueue(taskQueueIds[0] as number, claim('p'))).job?.id, third);
      assert.equal((await store.getJobHistory(third)).find((h) => h.note)?.note, 'priority 1 → 9');
      assert.equal(
        (await store.queueAdmin.setJobPriority([second], 1, { at: at(3), by: 'a' })).changed.length,
        0,
        'unchanged',
      );
    });

    it('oldest waiting job per TQ', async () => {
      const a = await store.submitJobs([newJob(alice)], at(5));
      const b = await store.submitJobs([newJob(bob, { priority: 2 }), newJob(bob, { priority: 9 })], at(7));
      await store.submitJobs([newJob(bob)], at(9));
      const ages = await store.queueAdmin.oldestWaitingJobs([...a.taskQueueIds, ...b.taskQueueIds, 999_999]);
      assert.deepEqual(
        [...ages.entries()].sort(),
        [
          [a.taskQueueIds[0], at(5)],
          [b.taskQueueIds[0], at(7)],
        ].sort(),
      );
    });

    it('settings keep every version; a replacement from an outdated version changes nothing', async () => {
      const first = await store.replaceSetting('s', '{"v":1}', { at: at(1), by: 'one' }, 0);
      assert.equal(first?.version, 1);
      assert.equal(await store.replaceSetting('s', '{"v":"lost"}', { at: at(2), by: 'two' }, 0), null);
      const second = await store.replaceSetting('s', '{"v":2}', { at: at(3), by: 'two' }, 1);
      assert.equal(second?.version, 2);
      await store.putSetting('s', '{"v":3}', { at: at(4), by: 'three' });
      assert.equal(await store.replaceSetting('s', '{"v":"stale"}', { at: at(5), by: 'four' }, 2), null);
      const history = await store.settingHistory('s', 10);
      assert.deepEqual(
        history.map((h) => [h.version, h.value, h.updatedBy]),
        [
          [3, '{"v":3}', 'three'],
          [2, '{"v":2}', 'two'],
          [1, '{"v":1}', 'one'],
        ],
      );
      assert.equal((await store.settingHistory('s', 1)).length, 1);
      assert.equal((await store.getSetting('s'))?.value, '{"v":3}');
    });

    // On PostgreSQL the writers run on several pooled connections at once; on SQLite they queue.
    it('concurrent replacements from the same version: exactly one wins', async () => {
      await store.putSetting('race', '0', { at: at(0), by: 'seed' });
      const outcomes = await Promise.all(
        Array.from({ length: 8 }, (_, i) => store.replaceSetting('race', String(i + 1), { at: at(1), by: `w${i}` }, 1)),
      );
      assert.equal(outcomes.filter((o) => o !== null).length, 1);
      assert.equal((await store.settingHistory('race', 10)).length, 2);
    });
  });
}
