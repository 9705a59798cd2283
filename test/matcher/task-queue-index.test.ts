/**
 * The index's scan lists (what matching scans per VO): append-only between compactions, so that the
 * placement checks cached per offer shape stay valid while TQs empty and fill; a TQ that empties stays
 * (callers skip it) until stale entries are more than half of the list, then the list is rebuilt
 * under a new epoch; a TQ listed again is not appended twice; a paused TQ counts as empty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TaskQueueIndex } from '../../matcher/matching/task-queue-index.ts';
import type { TaskQueueView } from '../../matcher/store/job-store.ts';
import type { TaskQueueRequirements } from '../../matcher/matching/task-queue-key.ts';

const requirements: TaskQueueRequirements = {
  coresMin: 1,
  coresMax: 1,
  wholeNode: false,
  memoryMB: null,
  memoryPerCoreMB: null,
  gpusMin: 0,
  gpusMax: 0,
  gpuModels: [],
  gpuMinMemoryMB: null,
  wallTimeSec: 3600,
  cpuWork: null,
  platform: null,
  diskMB: null,
  sites: [],
  bannedSites: [],
  ces: [],
  tags: [],
  jobType: 'User',
};

const view = (id: number, waitingJobs: number, vo = 'vo-a'): TaskQueueView => ({
  id,
  vo,
  group: `${vo}_user`,
  owner: 'alice',
  requirements,
  waitingJobs,
  topPriority: 0,
  nextJobId: waitingJobs > 0 ? id * 10 : null,
  createdAt: '2026-12-06T00:00:00.000Z',
  boost: 0,
  paused: null,
});

const stats = (id: number, waitingJobs: number) => ({ id, waitingJobs, topPriority: 0, nextJobId: null });

test('emptied TQs stay in the scan list (skipped by callers) until compaction; new and refilled ones are appended once', () => {
  const index = new TaskQueueIndex();
  for (let id = 1; id <= 200; id += 1) index.upsert(view(id, 4));
  index.upsert(view(999, 3, 'vo-b'));
  const first = index.scanList('vo-a');
  assert.equal(first.tqs.length, 200);
  assert.deepEqual(
    index.scanList('vo-b').tqs.map((tq) => tq.id),
    [999],
  );

  // 99 of 200 empty: less than half stale, same list, same epoch; they are there with 0 waiting.
  for (let id = 1; id <= 99; id += 1) index.applyStats(stats(id, 0));
  const same = index.scanList('vo-a');
  assert.equal(same.epoch, first.epoch);
  assert.equal(same.tqs.length, 200);
  assert.equal(same.tqs.filter((tq) => tq.waitingJobs > 0).length, 101);
  // Refilled: not appended again. A new TQ: appended at the end, same epoch.
  index.applyStats(stats(5, 2));
  index.upsert(view(300, 1));
  const grown = index.scanList('vo-a');
  assert.equal(grown.epoch, first.epoch);
  assert.deepEqual(
    grown.tqs.slice(-1).map((tq) => tq.id),
    [300],
  );
  assert.equal(grown.tqs.filter((tq) => tq.id === 5).length, 1);
  // A paused TQ leaves like an empty one.
  index.applyStats({ ...stats(150, 4), paused: true });
  assert.equal(index.scanList('vo-a').tqs.find((tq) => tq.id === 150)?.paused, true);

  // More than half stale: rebuilt under a new epoch, with only the listed TQs.
  for (let id = 100; id <= 200; id += 1) index.applyStats(stats(id, 0));
  const rebuilt = index.scanList('vo-a');
  assert.notEqual(rebuilt.epoch, first.epoch);
  assert.deepEqual(
    rebuilt.tqs.map((tq) => tq.id).sort((a, b) => a - b),
    [5, 300],
  );
  assert.equal(index.scanList('vo-b').tqs.length, 1, 'another VO is untouched');
});
