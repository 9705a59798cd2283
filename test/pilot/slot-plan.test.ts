/** The slot a pilot offers, from the probe, the site's declarations and the job features. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planSlot, type SlotDeclarations } from '../../pilot/slot-plan.ts';
import { Slot } from '../../pilot/slot.ts';
import type { NodeProbe } from '../../pilot/probe.ts';

const probe: NodeProbe = {
  node: {
    hostname: 'wn1',
    cores: 16,
    memoryMB: 64_000,
    os: 'Rocky 9',
    arch: 'x64',
    cpuModel: 'x',
    platform: 'x86_64-v3',
    cpuPower: 12.5,
    diskFreeMB: 500_000,
  },
  hardwareCores: 32,
  restricted: true,
  cpuPowerSource: 'declared',
  gpus: [
    { id: '0', vendor: 'NVIDIA', model: 'NVIDIA A100-SXM4-40GB', memoryMB: 40960, uuid: 'GPU-a' },
    { id: '1', vendor: 'NVIDIA', model: 'NVIDIA A100-SXM4-40GB', memoryMB: 40960, uuid: 'GPU-b' },
  ],
};
const none: SlotDeclarations = {
  coresLimit: null,
  memoryMBLimit: null,
  gpus: null,
  diskMBLimit: null,
  wholeNode: false,
  platform: null,
  cpuPower: null,
  tags: [],
  requiredTags: [],
  wallTimeSec: null,
  offerWallTimeMarginSec: 60,
  minOfferWallTimeSec: 60,
};
const noFeatures = { cores: null, memoryMB: null, diskMB: null };

test('nothing declared: what the probe found, GPUs without vendor details, detected platform and power', () => {
  const { options, warnings } = planSlot(probe, none, noFeatures, 0);
  assert.equal(options.cores, 16);
  assert.equal(options.memoryMB, 64_000);
  assert.deepEqual(options.gpus, [
    { id: '0', model: 'NVIDIA A100-SXM4-40GB', memoryMB: 40960 },
    { id: '1', model: 'NVIDIA A100-SXM4-40GB', memoryMB: 40960 },
  ]);
  assert.equal(options.diskMB, null);
  assert.equal(options.platform, 'x86_64-v3');
  assert.equal(options.cpuPower, 12.5);
  assert.deepEqual(warnings, []);
});

test('job features limit what was not declared; declarations are taken as they are (with a warning above the probe)', () => {
  const limited = planSlot(probe, none, { cores: 8, memoryMB: 16_000, diskMB: 20_000 }, 0).options;
  assert.deepEqual([limited.cores, limited.memoryMB, limited.diskMB], [8, 16_000, 20_000]);
  const declared = planSlot(
    probe,
    { ...none, coresLimit: 24, memoryMBLimit: 8000, diskMBLimit: 10_000, platform: 'x86_64-v2', cpuPower: 20 },
    { cores: 8, memoryMB: null, diskMB: 20_000 },
    0,
  );
  assert.deepEqual([declared.options.cores, declared.options.memoryMB, declared.options.diskMB], [24, 8000, 10_000]);
  assert.deepEqual([declared.options.platform, declared.options.cpuPower], ['x86_64-v2', 20]);
  assert.match(declared.warnings.join('\n'), /--cores 24 declares more cores than the 16/);
});

test('--gpus limits the detected GPUs, or declares unseen ones by index; 0 offers none', () => {
  assert.deepEqual(
    planSlot(probe, { ...none, gpus: 1 }, noFeatures, 0).options.gpus?.map((gpu) => gpu.id),
    ['0'],
  );
  assert.deepEqual(planSlot(probe, { ...none, gpus: 0 }, noFeatures, 0).options.gpus, []);
  const more = planSlot(probe, { ...none, gpus: 4 }, noFeatures, 0);
  assert.deepEqual(
    more.options.gpus?.map((gpu) => [gpu.id, gpu.model]),
    [
      ['0', 'NVIDIA A100-SXM4-40GB'],
      ['1', 'NVIDIA A100-SXM4-40GB'],
      ['2', 'unknown'],
      ['3', 'unknown'],
    ],
  );
  assert.match(more.warnings[0] ?? '', /declares 2 GPU\(s\) the probe did not see/);
});

test('--whole-node in a restricted slot is kept but flagged', () => {
  const plan = planSlot(probe, { ...none, wholeNode: true }, noFeatures, 0);
  assert.equal(plan.options.wholeNode, true);
  assert.match(plan.warnings.join('\n'), /cgroup or CPU affinity/);
});

test('the planned slot offers GPUs, disk, platform, power and required tags; whole node only while idle', () => {
  const slot = new Slot(
    planSlot(
      probe,
      { ...none, wholeNode: true, requiredTags: ['gpu'], tags: ['gpu', 'cvmfs'], diskMBLimit: 50_000 },
      noFeatures,
      0,
    ).options,
  );
  const idle = slot.offer(0);
  assert.equal(idle.kind, 'offer');
  if (idle.kind !== 'offer') return;
  assert.deepEqual(idle.resources.requiredTags, ['gpu']);
  assert.equal(idle.resources.gpus?.length, 2);
  assert.equal(idle.resources.diskMB, 50_000);
  assert.equal(idle.resources.platform, 'x86_64-v3');
  assert.equal(idle.resources.cpuPower, 12.5);
  assert.equal(idle.resources.wholeNode, true);
  slot.allocate('1:1', { cores: 4, memoryMB: 8000, gpuIds: ['1'], diskMB: 20_000 });
  const busy = slot.offer(0);
  assert.ok(busy.kind === 'offer');
  if (busy.kind !== 'offer') return;
  assert.equal(busy.resources.wholeNode, undefined, 'not a whole node once something runs');
  assert.deepEqual(
    busy.resources.gpus?.map((gpu) => gpu.id),
    ['0'],
  );
  assert.equal(busy.resources.diskMB, 30_000);
});
