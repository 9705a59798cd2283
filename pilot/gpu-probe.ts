/**
 * The node's GPUs: nvidia-smi and rocm-smi when they are installed (exact model, memory and the
 * index/UUID the runtime understands), else the PCI display controllers as sysfs lists them. A batch
 * system that gave the pilot some GPUs of the node says so in CUDA_VISIBLE_DEVICES (or the ROCm
 * variables): then only those are used, named as the batch system named them, so a job handed "1"
 * gets what the pilot itself knows as "1".
 */
import type { z } from 'zod';
import type { probedGpuSchema } from '../shared/protocol/messages.ts';

export type ProbedGpu = z.infer<typeof probedGpuSchema>;

/** Runs a tool; resolves with its stdout, or null when it is missing, fails or times out. */
export type CommandRunner = (command: string, args: readonly string[]) => Promise<string | null>;

export const NVIDIA_SMI_ARGS = ['--query-gpu=index,uuid,name,memory.total', '--format=csv,noheader,nounits'] as const;
export const ROCM_SMI_ARGS = ['--showproductname', '--showmeminfo', 'vram', '--showuniqueid', '--json'] as const;

/** `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits` (memory in MiB). */
export function parseNvidiaSmi(text: string): ProbedGpu[] {
  const gpus: ProbedGpu[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || /^(No devices|NVIDIA-SMI has failed)/i.test(line)) continue;
    const fields = line.split(',').map((field) => field.trim());
    if (fields.length < 4) continue;
    const [index, uuid] = fields as [string, string];
    const memory = fields.at(-1) as string;
    const name = fields.slice(2, -1).join(', '); // a model name may itself hold a comma
    if (!/^\d+$/.test(index)) continue;
    gpus.push({
      id: index,
      vendor: 'NVIDIA',
      model: name.slice(0, 255),
      memoryMB: /^\d+(\.\d+)?$/.test(memory) ? Math.floor(Number(memory)) : 0,
      ...(uuid.startsWith('GPU-') || uuid.startsWith('MIG-') ? { uuid } : {}),
    });
  }
  return gpus;
}

/** `rocm-smi --showproductname --showmeminfo vram --showuniqueid --json` (one object per `cardN`). */
export function parseRocmSmi(text: string): ProbedGpu[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return [];
  }
  if (typeof doc !== 'object' || doc === null) return [];
  const cards = Object.entries(doc as Record<string, unknown>)
    .map(([key, value]) => ({ index: /^card(\d+)$/.exec(key)?.[1], value }))
    .filter(
      (card): card is { index: string; value: Record<string, unknown> } =>
        card.index !== undefined && typeof card.value === 'object' && card.value !== null,
    )
    .sort((a, b) => Number(a.index) - Number(b.index));
  return cards.map(({ index, value }) => {
    const field = (...names: string[]): string | undefined => {
      for (const [key, v] of Object.entries(value)) {
        if (names.some((name) => key.toLowerCase() === name.toLowerCase()) && v !== null && String(v).trim() !== '')
          return String(v).trim();
      }
      return undefined;
    };
    const bytes = Number(field('VRAM Total Memory (B)') ?? '0');
    const uuid = field('Unique ID', 'GUID');
    return {
      id: index,
      vendor: 'AMD',
      model: (field('Card Series', 'Card series', 'Marketing Name', 'Card model', 'Card SKU') ?? 'AMD GPU').slice(
        0,
        255,
      ),
      memoryMB: Number.isFinite(bytes) ? Math.floor(bytes / (1024 * 1024)) : 0,
      ...(uuid === undefined ? {} : { uuid: uuid.slice(0, 128) }),
    };
  });
}

/** A PCI display controller, reduced to what matters here (see system-facts.ts). */
export interface GraphicsController {
  vendor?: string;
  model?: string;
  vram?: number | null;
}

/** Compute GPUs among the PCI display controllers (server BMC graphics such as ASPEED or Matrox are not). */
export function gpusFromGraphics(controllers: readonly GraphicsController[]): ProbedGpu[] {
  const gpus: ProbedGpu[] = [];
  for (const controller of controllers) {
    const vendorText = `${controller.vendor ?? ''} ${controller.model ?? ''}`;
    const vendor = /nvidia/i.test(vendorText)
      ? 'NVIDIA'
      : /\bamd\b|advanced micro devices|\bati\b/i.test(vendorText)
        ? 'AMD'
        : null;
    if (vendor === null) continue;
    const vram = typeof controller.vram === 'number' && controller.vram > 0 ? Math.floor(controller.vram) : 0;
    if (vendor === 'AMD' && vram > 0 && vram < 1024) continue; // an integrated or management chip
    gpus.push({
      id: String(gpus.length),
      vendor,
      model: (controller.model ?? 'unknown').slice(0, 255),
      memoryMB: vram,
    });
  }
  return gpus;
}

/**
 * Keeps only the GPUs the batch system gave the pilot (its CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES /
 * HIP_VISIBLE_DEVICES), each renamed to the batch system's token for it (an index or a UUID).
 */
export function restrictToVisible(gpus: readonly ProbedGpu[], visible: string | undefined): ProbedGpu[] {
  if (visible === undefined) return [...gpus];
  const tokens = visible
    .split(',')
    .map((token) => token.trim())
    .filter((token) => token !== '');
  if (tokens.length === 0 || tokens.some((token) => token === 'NoDevFiles' || token === '-1')) return [];
  return tokens.map((token, position) => {
    const known = gpus.find(
      (gpu) =>
        gpu.id === token ||
        gpu.uuid === token ||
        (gpu.uuid !== undefined && token.startsWith('GPU-') && gpu.uuid.startsWith(token)),
    );
    // Inside a device cgroup the tools may renumber what they see: fall back to the same position.
    const base = known ?? gpus[position];
    return {
      id: token,
      vendor: base?.vendor ?? 'unknown',
      model: base?.model ?? 'unknown',
      memoryMB: base?.memoryMB ?? 0,
      ...(base?.uuid ? { uuid: base.uuid } : {}),
    };
  });
}

export interface GpuProbeDeps {
  run: CommandRunner;
  graphics: () => Promise<GraphicsController[]>;
  env: NodeJS.ProcessEnv;
}

export async function probeGpus(deps: GpuProbeDeps): Promise<ProbedGpu[]> {
  const [nvidia, amd] = await Promise.all([
    deps.run('nvidia-smi', NVIDIA_SMI_ARGS),
    deps.run('rocm-smi', ROCM_SMI_ARGS),
  ]);
  const nvidiaGpus = nvidia === null ? [] : parseNvidiaSmi(nvidia);
  const amdGpus = amd === null ? [] : parseRocmSmi(amd);
  // One vendor per node: both runtimes number their devices from 0, so mixing them would clash.
  if (nvidiaGpus.length > 0) return restrictToVisible(nvidiaGpus, deps.env['CUDA_VISIBLE_DEVICES']);
  if (amdGpus.length > 0)
    return restrictToVisible(amdGpus, deps.env['ROCR_VISIBLE_DEVICES'] ?? deps.env['HIP_VISIBLE_DEVICES']);
  // No vendor tool: the PCI view (model and memory may be vague, the count is right).
  const fromPci = gpusFromGraphics(await deps.graphics().catch(() => []));
  return restrictToVisible(
    fromPci,
    deps.env['CUDA_VISIBLE_DEVICES'] ?? deps.env['ROCR_VISIBLE_DEVICES'] ?? deps.env['HIP_VISIBLE_DEVICES'],
  );
}

/** The environment that shows a job only its GPUs (every runtime's variable; empty = none). */
export function gpuEnvironment(gpus: readonly { id: string }[]): Record<string, string> {
  const ids = gpus.map((gpu) => gpu.id).join(',');
  return {
    CUDA_VISIBLE_DEVICES: ids,
    ROCR_VISIBLE_DEVICES: ids,
    HIP_VISIBLE_DEVICES: ids,
    GPU_DEVICE_ORDINAL: ids,
    PILOTHOUSE_JOB_GPUS: ids,
  };
}
