/**
 * Purging, the same on every JobStore: finished jobs go with everything kept about them once older
 * than their status's cutoff, jobs still in play never; a sandbox goes only when no stored job names
 * it and it was not used since the cutoff; a submission naming a purged sandbox fails whole.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { JobStore } from '../../matcher/store/job-store.ts';
import { PilothouseError } from '../../shared/errors.ts';
import { alice, newJob } from '../helpers/jobs.ts';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (seconds: number): string => new Date(T0 + seconds * 1000).toISOString();
const sha = (c: string) => c.repeat(64);

export function jobRetentionSuite(name: string, openStore: () => Promise<JobStore>): void {
  describe(`job retention conformance: ${name}`, () => {
    let store: JobStore;
    beforeEach(async () => {
      store = await openStore();
    });
    afterEach(() => store.close());

    async function finish(id: number, status: 'Done' | 'Killed' | 'Deleted', seconds: number): Promise<void> {
      if (status === 'Done') {
        const tq = (await store.getJob(id))?.taskQueueId as number;
        const claim = await store.claimFromTaskQueue(tq, {
          pilotId: 'p',
          site: 'Site.A',
          ce: null,
          at: at(seconds - 3),
          jobType: 'User',
          maxRunning: null,
          matchingDelaySec: null,
        });
        assert.equal(claim.job?.id, id);
        await store.reportStatus(id, 1, { status: 'Running', at: at(seconds - 2), source: 'Pilot' });
        await store.recordOutputTail(id, 1, { stdout: 'x', stderr: '' }, at(seconds - 1));
        await store.reportStatus(id, 1, { status: 'Done', exitCode: 0, at: at(seconds), source: 'Pilot' });
      } else {
        await store.killJob(id, at(seconds), 'alice');
        if (status === 'Deleted') {
          await store.reportStatus(id, 1, { status: 'Deleted', at: at(seconds), source: 'alice' });
        }
      }
    }

    it('finished jobs older than their cutoff go with their history; jobs in play and recent ones stay', async () => {
      const { jobIds } = await store.submitJobs(
        Array.from({ length: 6 }, () => newJob(alice)),
        at(0),
      );
      const [oldDone, oldKilled, oldDeleted, recentDone, waiting, recentDeleted] = jobIds as number[] as [
        number,
        number,
        number,
        number,
        number,
        number,
      ];
      await finish(oldDone as number, 'Done', 100);
      await finish(oldKilled as number, 'Killed', 100);
      await finish(oldDeleted as number, 'Deleted', 100);
      await finish(recentDone as number, 'Done', 10_000);
      await finish(recentDeleted as number, 'Deleted', 10_000);

      assert.deepEqual(await store.purgeJobs({ finalBefore: null, deletedBefore: null, limit: 100 }), []);
      const finalOnly = await store.purgeJobs({ finalBefore: at(5_000), deletedBefore: null, limit: 1 });
      assert.equal(finalOnly.length, 1, 'at most the limit');
      const rest = await store.purgeJobs({ finalBefore: at(5_000), deletedBefore: at(5_000), limit: 100 });
      assert.deepEqual(
        [...finalOnly, ...rest].sort((a, b) => a - b),
        [oldDone, oldKilled, oldDeleted],
      );
      for (const id of [oldDone, oldKilled, oldDeleted]) {
        assert.equal(await store.getJob(id), null);
        assert.deepEqual(await store.getJobHistory(id), []);
        assert.equal(await store.getOutputTail(id), null);
      }
      for (const id of [recentDone, waiting, recentDeleted]) assert.notEqual(await store.getJob(id), null);
      assert.deepEqual(
        await store.purgeJobs({ finalBefore: at(1e9), deletedBefore: at(1e9), limit: 100 }).then((ids) => ids.sort()),
        [recentDone, recentDeleted].sort(),
        'a waiting job is never purged',
      );
    });

    it('a sandbox goes only when no stored job names it and it is unused since the cutoff', async () => {
      for (const c of ['a', 'b', 'c', 'd']) {
        await store.recordSandbox({ sha256: sha(c), sizeBytes: 10, vo: 'vo-a', owner: 'alice', createdAt: at(0) });
      }
      const input = (c: string) => newJob(alice, { inputSandbox: [`sha256:${sha(c)}`] });
      const {
        jobIds: [withA, withB],
      } = await store.submitJobs([input('a'), input('b')], at(10));
      // 'c' becomes a job's output sandbox; 'd' is named by nothing.
      await finish(withA as number, 'Done', 20);
      await store.reportStatus(withA as number, 1, {
        outputSandbox: `sha256:${sha('c')}`,
        at: at(21),
        source: 'Pilot',
      });
      assert.equal((await store.getJob(withA as number))?.outputSandbox, `sha256:${sha('c')}`);

      assert.deepEqual(await store.purgeUnusedSandboxes(at(5), 100), [sha('d')], 'a, b named by jobs; c an output');
      assert.deepEqual(await store.purgeUnusedSandboxes(at(1e6), 100), [], 'nothing else while the jobs are there');
      await store.purgeJobs({ finalBefore: at(1e6), deletedBefore: null, limit: 100 });
      assert.deepEqual(
        (await store.purgeUnusedSandboxes(at(1e6), 100)).sort(),
        [sha('a'), sha('c')],
        "the purged job's input and output",
      );
      assert.deepEqual(await store.purgeUnusedSandboxes(at(5), 100), [], "b's submission marked it used at 10");
      assert.notEqual(await store.getSandbox(sha('b')), null);
      assert.notEqual(await store.getJob(withB as number), null);
    });

    it('a submission naming a sandbox that was purged meanwhile fails whole', async () => {
      await store.recordSandbox({ sha256: sha('e'), sizeBytes: 10, vo: 'vo-a', owner: 'alice', createdAt: at(0) });
      assert.deepEqual(await store.purgeUnusedSandboxes(at(5), 100), [sha('e')]);
      await assert.rejects(
        store.submitJobs([newJob(alice), newJob(alice, { inputSandbox: [`sha256:${sha('e')}`] })], at(10)),
        (error: unknown) => error instanceof PilothouseError && error.code === 'VALIDATION_FAILED',
      );
      assert.equal(
        (await store.searchJobs({ sort: [], page: 1, perPage: 10 })).total,
        0,
        'not even the job without sandboxes was stored',
      );
    });
  });
}
