/**
 * From what the probe found, what the operator declared (flags) and what the batch system allows
 * (WLCG job features), the slot this pilot offers: cores, memory and GPUs the site director declared
 * are taken as they are (the site knows its slot; a probe inside a container or without the vendor
 * tools may see more or less), else the smallest of what the probe and the job features say; the
 * disk budget, platform and CPU power likewise. Pure, so that every rule is testable.
 */
import type { GpuInfo } from '../shared/protocol/messages.ts';
import type { NodeProbe } from './probe.ts';
import type { SlotOptions } from './slot.ts';
import type { JobFeatureLimits } from './time-left.ts';

export interface SlotDeclarations {
  coresLimit: number | null;
  memoryMBLimit: number | null;
  gpus: number | null;
  diskMBLimit: number | null;
  wholeNode: boolean;
  platform: string | null;
  cpuPower: number | null;
  tags: readonly string[];
  requiredTags: readonly string[];
  wallTimeSec: number | null;
  offerWallTimeMarginSec: number;
  minOfferWallTimeSec: number;
}

export interface SlotPlan {
  options: SlotOptions;
  /** Things the operator should know (declared GPUs the probe did not see...). */
  warnings: string[];
}

function smallest(...values: (number | null | undefined)[]): number | null {
  const known = values.filter((value): value is number => typeof value === 'number');
  return known.length === 0 ? null : Math.min(...known);
}

export function planSlot(
  probe: NodeProbe,
  declared: SlotDeclarations,
  features: JobFeatureLimits,
  startMs: number,
): SlotPlan {
  const warnings: string[] = [];
  const cores = Math.max(1, declared.coresLimit ?? smallest(probe.node.cores, features.cores) ?? 1);
  const memoryMB = Math.max(0, declared.memoryMBLimit ?? smallest(probe.node.memoryMB, features.memoryMB) ?? 0);

  const detected: GpuInfo[] = probe.gpus.map(({ id, model, memoryMB: mb }) => ({ id, model, memoryMB: mb }));
  let gpus = detected;
  if (declared.gpus !== null) {
    gpus = detected.slice(0, declared.gpus);
    if (declared.gpus > detected.length) {
      // Declared but unseen (no vendor tool in the pilot's environment): named by index, model unknown.
      const used = new Set(detected.map((gpu) => gpu.id));
      for (let index = 0; gpus.length < declared.gpus; index += 1) {
        if (!used.has(String(index))) gpus.push({ id: String(index), model: 'unknown', memoryMB: 0 });
      }
      warnings.push(`--gpus ${declared.gpus} declares ${declared.gpus - detected.length} GPU(s) the probe did not see`);
    }
  }
  if (declared.coresLimit !== null && declared.coresLimit > probe.node.cores) {
    warnings.push(`--cores ${declared.coresLimit} declares more cores than the ${probe.node.cores} the probe found`);
  }
  if (declared.memoryMBLimit !== null && declared.memoryMBLimit > probe.node.memoryMB) {
    warnings.push(
      `--memory-mb ${declared.memoryMBLimit} declares more memory than the ${probe.node.memoryMB} MB the probe found`,
    );
  }
  const wholeNode = declared.wholeNode;
  if (wholeNode && probe.restricted)
    warnings.push('--whole-node, but a cgroup or CPU affinity limits this pilot to part of the node');

  return {
    options: {
      cores,
      memoryMB,
      wallTimeSec: declared.wallTimeSec,
      startMs,
      tags: declared.tags,
      requiredTags: declared.requiredTags,
      offerWallTimeMarginSec: declared.offerWallTimeMarginSec,
      minOfferWallTimeSec: declared.minOfferWallTimeSec,
      gpus,
      diskMB: smallest(declared.diskMBLimit, features.diskMB),
      wholeNode,
      platform: declared.platform ?? probe.node.platform ?? null,
      cpuPower: declared.cpuPower ?? probe.node.cpuPower ?? null,
    },
    warnings,
  };
}
