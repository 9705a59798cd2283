/**
 * The pilot's slot: what the node gives it (cores, memory, GPUs, disk, tags, time left) and what
 * running jobs hold. Offers are built from what is LEFT, so a multi-core pilot keeps filling itself
 * with jobs. Pure bookkeeping: no I/O, time comes in as `nowMs`, disk observations are pushed in.
 */
import type { GpuInfo, OfferResources } from '../shared/protocol/messages.ts';

export interface SlotOptions {
  cores: number;
  memoryMB: number;
  /** Seconds of life from `startMs`; null = unknown/unlimited (a batch end may still be set later). */
  wallTimeSec: number | null;
  startMs: number;
  tags: readonly string[];
  /** Kept back from every offer's wall time. */
  offerWallTimeMarginSec: number;
  /** Below this (after the margin) the slot refuses to offer: its time is up. */
  minOfferWallTimeSec: number;
  /** Only jobs carrying all these tags may come (a GPU or whole-node queue's own jobs). */
  requiredTags?: readonly string[];
  gpus?: readonly GpuInfo[];
  /** Scratch disk the slot may give jobs, MB; null/absent = unknown (jobs needing disk will not match). */
  diskMB?: number | null;
  /** The slot spans the whole node: it says so in offers while nothing runs. */
  wholeNode?: boolean;
  platform?: string | null;
  cpuPower?: number | null;
}

export interface SlotHolding {
  cores: number;
  memoryMB: number;
  gpuIds?: readonly string[];
  diskMB?: number;
}

/** Why no offer can be made: nothing free right now, or never again (time is up). */
export type OfferVerdict =
  { kind: 'offer'; resources: OfferResources } | { kind: 'full' } | { kind: 'time-up'; timeLeftSec: number };

export class Slot {
  readonly #options: SlotOptions;
  readonly #holdings = new Map<string, SlotHolding>();
  #batchEndsAtMs: number | null = null;
  /** Free disk in the working area as last observed, already net of what running jobs still may write. */
  #observedFreeDiskMB: number | null = null;

  constructor(options: SlotOptions) {
    this.#options = { ...options, tags: [...options.tags] };
  }

  get totalCores(): number {
    return this.#options.cores;
  }

  get totalMemoryMB(): number {
    return this.#options.memoryMB;
  }

  get gpus(): readonly GpuInfo[] {
    return this.#options.gpus ?? [];
  }

  /** Holds resources for a job. Returns false (but still records it) when they exceed what is free. */
  allocate(key: string, holding: SlotHolding): boolean {
    const free = this.free();
    const freeGpus = new Set(this.freeGpus().map((gpu) => gpu.id));
    const gpusOk = (holding.gpuIds ?? []).every((id) => freeGpus.has(id));
    this.#holdings.set(key, holding);
    return holding.cores <= free.cores && holding.memoryMB <= free.memoryMB && gpusOk;
  }

  release(key: string): void {
    this.#holdings.delete(key);
  }

  get jobCount(): number {
    return this.#holdings.size;
  }

  holding(key: string): SlotHolding | undefined {
    return this.#holdings.get(key);
  }

  free(): { cores: number; memoryMB: number } {
    let cores = this.#options.cores;
    let memoryMB = this.#options.memoryMB;
    for (const holding of this.#holdings.values()) {
      cores -= holding.cores;
      memoryMB -= holding.memoryMB;
    }
    return { cores: Math.max(0, cores), memoryMB: Math.max(0, memoryMB) };
  }

  /** The slot's GPUs that no running job holds, in the slot's order. */
  freeGpus(): GpuInfo[] {
    const held = new Set<string>();
    for (const holding of this.#holdings.values()) for (const id of holding.gpuIds ?? []) held.add(id);
    return (this.#options.gpus ?? []).filter((gpu) => !held.has(gpu.id));
  }

  /**
   * Records the free disk of the working area (`freeMB`, after the pilot's reserve) and what each
   * running job has written so far, so that disk a job asked for but has not used yet is not offered.
   */
  observeDisk(freeMB: number | null, usedByJobMB: ReadonlyMap<string, number> = new Map()): void {
    if (freeMB === null) {
      this.#observedFreeDiskMB = null;
      return;
    }
    let promised = 0;
    for (const [key, holding] of this.#holdings)
      promised += Math.max(0, (holding.diskMB ?? 0) - (usedByJobMB.get(key) ?? 0));
    this.#observedFreeDiskMB = Math.max(0, Math.floor(freeMB - promised));
  }

  /** Disk to offer, MB: the budget minus what jobs hold, never more than the disk really has free. */
  freeDiskMB(): number | null {
    const budget = this.#options.diskMB ?? null;
    let held = 0;
    for (const holding of this.#holdings.values()) held += holding.diskMB ?? 0;
    const fromBudget = budget === null ? null : Math.max(0, budget - held);
    if (fromBudget === null) return this.#observedFreeDiskMB;
    return this.#observedFreeDiskMB === null ? fromBudget : Math.min(fromBudget, this.#observedFreeDiskMB);
  }

  /** What the batch system says about the slot's end (null: it says nothing). The earliest end counts. */
  setBatchEnd(endsAtMs: number | null): void {
    this.#batchEndsAtMs = endsAtMs;
  }

  /** When the slot ends (configured limit or batch system, whichever is first); null = unknown. */
  endsAtMs(): number | null {
    const { wallTimeSec, startMs } = this.#options;
    const configured = wallTimeSec === null ? null : startMs + wallTimeSec * 1000;
    if (configured === null) return this.#batchEndsAtMs;
    return this.#batchEndsAtMs === null ? configured : Math.min(configured, this.#batchEndsAtMs);
  }

  /** Seconds left in the slot's life; null when unlimited. */
  timeLeftSec(nowMs: number): number | null {
    const endsAt = this.endsAtMs();
    if (endsAt === null) return null;
    return Math.max(0, Math.floor((endsAt - nowMs) / 1000));
  }

  /** What to offer now: the free resources and the usable time left. */
  offer(nowMs: number): OfferVerdict {
    const timeLeftSec = this.timeLeftSec(nowMs);
    let wallTimeSec: number | null = null;
    if (timeLeftSec !== null) {
      wallTimeSec = timeLeftSec - this.#options.offerWallTimeMarginSec;
      if (wallTimeSec < this.#options.minOfferWallTimeSec) return { kind: 'time-up', timeLeftSec };
    }
    const free = this.free();
    if (free.cores < 1) return { kind: 'full' };
    const o = this.#options;
    const resources: OfferResources = { cores: free.cores, memoryMB: free.memoryMB, wallTimeSec, tags: [...o.tags] };
    if (o.requiredTags !== undefined && o.requiredTags.length > 0) resources.requiredTags = [...o.requiredTags];
    if (o.gpus !== undefined && o.gpus.length > 0) resources.gpus = this.freeGpus();
    const disk = this.freeDiskMB();
    if (disk !== null) resources.diskMB = disk;
    if (o.cpuPower !== undefined && o.cpuPower !== null) resources.cpuPower = o.cpuPower;
    if (o.platform !== undefined && o.platform !== null) resources.platform = o.platform;
    if (o.wholeNode === true && this.#holdings.size === 0) resources.wholeNode = true;
    return { kind: 'offer', resources };
  }
}
