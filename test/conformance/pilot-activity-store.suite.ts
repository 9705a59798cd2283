/**
 * One behavioural suite for every PilotActivityStore: shipped log lines stored once per (pilot, seq),
 * in order, up to a cap (`maxLogLinesPerPilot` 5 here); drain requests and exit records; the node's
 * last heartbeat; each job's usage with its peaks, per attempt.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { PilotActivityStore } from '../../matcher/store/pilot-activity-store.ts';

const at = '2026-01-01T00:00:00.000Z';
const lines = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ seq: from + i, line: `{"n":${from + i}}` }));

/** `open` must give a fresh store whose cap is 5 lines per pilot. */
export function pilotActivityStoreSuite(name: string, open: () => Promise<PilotActivityStore>): void {
  describe(`PilotActivityStore conformance: ${name}`, () => {
    let store: PilotActivityStore;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(() => store.close());

    it('log lines are kept once per (pilot, seq), in order, up to the cap', async () => {
      assert.deepEqual(await store.appendLogs('p1', lines(1, 3), 2, at), { stored: 3, duplicates: 0, overCap: 0 });
      assert.deepEqual(
        await store.appendLogs('p1', lines(1, 3), 2, at),
        { stored: 0, duplicates: 3, overCap: 0 },
        'a replay',
      );
      assert.deepEqual(await store.appendLogs('p1', lines(4, 8), 0, at), { stored: 2, duplicates: 0, overCap: 3 });
      const page = await store.readLogs('p1', { afterSeq: 2, limit: 2 });
      assert.deepEqual(
        page.lines.map((l) => [l.seq, l.line, l.receivedAt]),
        [
          [3, '{"n":3}', at],
          [4, '{"n":4}', at],
        ],
      );
      assert.equal(page.nextAfterSeq, 4);
      assert.equal((await store.readLogs('p1', { afterSeq: 5, limit: 10 })).nextAfterSeq, null);
      const activity = await store.getActivity('p1');
      assert.deepEqual([activity.logLines, activity.droppedLogLines], [5, 2 + 3]);
      assert.deepEqual((await store.readLogs('other', { afterSeq: 0, limit: 10 })).lines, []);
    });

    it('drain requests and exit records are kept; an unknown pilot has none', async () => {
      assert.deepEqual(await store.getActivity('p2'), {
        drain: null,
        exit: null,
        lastHeartbeat: null,
        logLines: 0,
        droppedLogLines: 0,
      });
      await store.requestDrain('p2', { requestedAt: at, requestedBy: 'admin', reason: 'downtime' });
      await store.requestDrain('p2', { requestedAt: at, requestedBy: 'admin', reason: 'downtime, again' });
      await store.recordExit('p2', { at, reason: 'drain-command', jobsRun: 3, jobsFailed: 1 });
      const activity = await store.getActivity('p2');
      assert.deepEqual(activity.drain, { requestedAt: at, requestedBy: 'admin', reason: 'downtime, again' });
      assert.deepEqual(activity.exit, { at, reason: 'drain-command', jobsRun: 3, jobsFailed: 1 });
    });

    it('heartbeats keep the node load and each job’s usage with peaks per attempt', async () => {
      const sample = { jobId: 7, attempt: 1, at, cpuSec: 1, rssMB: 300, wallSec: 10, diskMB: 50 };
      await store.recordHeartbeat('p1', { at, load1: 0.5, diskFreeMB: 1000 }, [sample]);
      await store.recordHeartbeat('p1', null, [{ ...sample, rssMB: 100, diskMB: 20, wallSec: 20 }]);
      const usage = await store.getJobUsage(7);
      assert.deepEqual(
        [usage?.rssMB, usage?.peakRssMB, usage?.diskMB, usage?.peakDiskMB, usage?.wallSec, usage?.load1],
        [100, 300, 20, 50, 20, null],
      );
      await store.recordHeartbeat('p1', null, [{ ...sample, attempt: 2, rssMB: 10, diskMB: 1 }]);
      assert.deepEqual(
        [(await store.getJobUsage(7))?.peakRssMB, (await store.getJobUsage(7))?.attempt],
        [10, 2],
        'a new attempt starts its peaks afresh',
      );
      await store.recordHeartbeat('p1', null, [{ ...sample, attempt: 1, rssMB: 999 }]);
      assert.equal((await store.getJobUsage(7))?.attempt, 2, 'a late sample of an older attempt changes nothing');
      assert.deepEqual((await store.getActivity('p1')).lastHeartbeat, { at, load1: 0.5, diskFreeMB: 1000 });
      assert.equal(await store.getJobUsage(8), null);
    });
  });
}
