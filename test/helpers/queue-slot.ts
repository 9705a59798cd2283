/** A queue's slot as a site director describes it (8 cores, 32 GB, a day), with fields to override. */
import type { QueueSlot } from '../../shared/protocol/site-director.ts';

export const queueSlot = (overrides: Partial<QueueSlot> = {}): QueueSlot => ({
  cores: 8,
  memoryMB: 32_000,
  wallTimeSec: 86_400,
  gpus: 0,
  gpuModel: null,
  gpuMemoryMB: null,
  platform: null,
  tags: [],
  requiredTags: [],
  wholeNode: false,
  diskMB: null,
  cpuPower: null,
  ...overrides,
});
