import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Slot } from '../../pilot/slot.ts';

const base = {
  cores: 8,
  memoryMB: 16_000,
  wallTimeSec: null,
  startMs: 0,
  tags: ['a'],
  offerWallTimeMarginSec: 60,
  minOfferWallTimeSec: 60,
};

test('free resources are the total minus what jobs hold', () => {
  const slot = new Slot(base);
  assert.equal(slot.allocate('1:1', { cores: 3, memoryMB: 4000 }), true);
  assert.equal(slot.allocate('2:1', { cores: 1, memoryMB: 0 }), true);
  assert.deepEqual(slot.free(), { cores: 4, memoryMB: 12_000 });
  slot.release('1:1');
  assert.deepEqual(slot.free(), { cores: 7, memoryMB: 16_000 });
  slot.release('1:1'); // twice is harmless
  assert.deepEqual(slot.free(), { cores: 7, memoryMB: 16_000 });
  assert.equal(slot.jobCount, 1);
});

test('an allocation beyond what is free is recorded but flagged, and free never goes negative', () => {
  const slot = new Slot(base);
  assert.equal(slot.allocate('1:1', { cores: 6, memoryMB: 0 }), true);
  assert.equal(slot.allocate('2:1', { cores: 4, memoryMB: 20_000 }), false);
  assert.deepEqual(slot.free(), { cores: 0, memoryMB: 0 });
  assert.deepEqual(slot.offer(0), { kind: 'full' });
  slot.release('2:1');
  assert.equal(slot.offer(0).kind, 'offer');
});

test('offers carry free cores and memory, tags, and no wall time when unlimited', () => {
  const slot = new Slot(base);
  slot.allocate('1:1', { cores: 2, memoryMB: 1000 });
  assert.deepEqual(slot.offer(123_456), {
    kind: 'offer',
    resources: { cores: 6, memoryMB: 15_000, wallTimeSec: null, tags: ['a'] },
  });
});

test('offered wall time is the time left minus the margin; too little left means time-up', () => {
  const slot = new Slot({ ...base, wallTimeSec: 3600, startMs: 1_000_000 });
  assert.equal(slot.timeLeftSec(1_000_000), 3600);
  const offer = slot.offer(1_000_000 + 600_000);
  assert.equal(offer.kind === 'offer' && offer.resources.wallTimeSec, 3000 - 60);
  assert.deepEqual(slot.offer(1_000_000 + 3_481_000), { kind: 'time-up', timeLeftSec: 119 });
  assert.equal(slot.offer(1_000_000 + 3_480_000).kind, 'offer', 'exactly the minimum is still offered');
  assert.equal(slot.timeLeftSec(1_000_000 + 10_000_000), 0);
});

test('GPUs: held ids are not offered again; taking a held GPU is flagged', () => {
  const gpus = [
    { id: '0', model: 'A100', memoryMB: 40_960 },
    { id: '1', model: 'A100', memoryMB: 40_960 },
  ];
  const slot = new Slot({ ...base, gpus });
  assert.equal(slot.allocate('1:1', { cores: 1, memoryMB: 0, gpuIds: ['1'] }), true);
  assert.deepEqual(
    slot.freeGpus().map((gpu) => gpu.id),
    ['0'],
  );
  assert.equal(slot.allocate('2:1', { cores: 1, memoryMB: 0, gpuIds: ['1'] }), false);
  slot.release('1:1');
  slot.release('2:1');
  assert.deepEqual(
    slot.freeGpus().map((gpu) => gpu.id),
    ['0', '1'],
  );
});

test('disk: the budget minus holdings, never above what the disk has free beyond what jobs may still write', () => {
  const slot = new Slot({ ...base, diskMB: 10_000 });
  assert.equal(slot.freeDiskMB(), 10_000);
  slot.allocate('1:1', { cores: 1, memoryMB: 0, diskMB: 3000 });
  assert.equal(slot.freeDiskMB(), 7000);
  // 5000 MB free on disk, the job wrote 1000 of its 3000: 2000 more may still come.
  slot.observeDisk(5000, new Map([['1:1', 1000]]));
  assert.equal(slot.freeDiskMB(), 3000);
  slot.observeDisk(null);
  assert.equal(slot.freeDiskMB(), 7000);
  const unbudgeted = new Slot(base);
  assert.equal(unbudgeted.freeDiskMB(), null, 'unknown until observed');
  unbudgeted.observeDisk(800);
  assert.equal(
    unbudgeted.offer(0).kind === 'offer' &&
      (unbudgeted.offer(0) as { resources: { diskMB?: number } }).resources.diskMB,
    800,
  );
});

test("the batch system's end cuts the configured one; the earliest counts", () => {
  const slot = new Slot({ ...base, wallTimeSec: 7200, startMs: 0 });
  assert.equal(slot.endsAtMs(), 7_200_000);
  slot.setBatchEnd(3_600_000);
  assert.equal(slot.endsAtMs(), 3_600_000);
  assert.equal(slot.timeLeftSec(600_000), 3000);
  slot.setBatchEnd(9_000_000);
  assert.equal(slot.endsAtMs(), 7_200_000);
  const batchOnly = new Slot(base);
  batchOnly.setBatchEnd(1_000_000);
  assert.equal(
    batchOnly.offer(0).kind === 'offer' &&
      (batchOnly.offer(0) as { resources: { wallTimeSec: number } }).resources.wallTimeSec,
    940,
  );
});
