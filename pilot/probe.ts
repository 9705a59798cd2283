/**
 * What this worker node has: cores, memory, GPUs, free disk in the working area, OS, kernel,
 * platform (architecture and x86-64 level), CPU model, and a quick CPU-power figure. Core and memory
 * numbers are the smallest of what the hardware reports and what the pilot may use (CPU affinity,
 * cgroup v2 limits), so a pilot inside a batch slot or a container does not oversell it.
 */
import os from 'node:os';
import { constants } from 'node:fs';
import { access, readFile, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { NodeInfo } from '../shared/protocol/messages.ts';
import { runCpuBenchmark } from './cpu-power.ts';
import { probeGpus, type CommandRunner, type ProbedGpu } from './gpu-probe.ts';
import { detectPlatform } from './platform-detect.ts';
import { cpuModelFromCpuinfo, pciDisplayControllers, readDistribution } from './system-facts.ts';

/** cgroup v2 `cpu.max` ("max 100000" or "<quota> <period>") as a core count, or null. */
export function parseCpuMax(text: string): number | null {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || period === undefined || quota === 'max') return null;
  const cores = Number(quota) / Number(period);
  return Number.isFinite(cores) && cores > 0 ? Math.max(1, Math.ceil(cores)) : null;
}

/** cgroup v2 `memory.max` ("max" or bytes) in MiB, or null. */
export function parseMemoryMax(text: string): number | null {
  const value = text.trim();
  if (value === 'max' || !/^\d+$/.test(value)) return null;
  return Math.floor(Number(value) / (1024 * 1024));
}

async function readCgroup(file: string): Promise<string | null> {
  try {
    return await readFile(`/sys/fs/cgroup/${file}`, 'utf8');
  } catch {
    return null;
  }
}

function clip(text: string, max: number): string {
  return text.length > max ? text.slice(0, max) : text;
}

/** Whether `command` names an executable file, itself or in a PATH directory (no process started). */
export async function onPath(command: string, pathVariable = process.env.PATH ?? ''): Promise<boolean> {
  const candidates = command.includes('/')
    ? [command]
    : pathVariable
        .split(':')
        .filter((dir) => dir !== '')
        .map((dir) => path.join(dir, command));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return true;
    } catch {
      // not this one
    }
  }
  return false;
}

/**
 * Runs a node tool with a time limit; stdout, or null when the tool is missing, fails or hangs. A
 * tool that is not installed (nvidia-smi on a CPU node) is not even tried: starting a process only to
 * learn that is what made a pilot slow to start.
 */
export const runTool: CommandRunner = async (command, args) => {
  if (!(await onPath(command))) return null;
  try {
    // Loaded only when a tool is there to run: most nodes start without needing it.
    const { execa } = await import('execa');
    const result = await execa(command, [...args], {
      timeout: 10_000,
      reject: false,
      stdin: 'ignore',
      stripFinalNewline: false,
    });
    return result.exitCode === 0 && typeof result.stdout === 'string' ? result.stdout : null;
  } catch {
    return null;
  }
};

/** Free space of the file system holding `dir`, MB (for unprivileged users: what they may write). */
export async function freeDiskMB(dir: string): Promise<number | null> {
  try {
    const stats = await statfs(dir);
    return Math.floor((stats.bavail * stats.bsize) / (1024 * 1024));
  } catch {
    return null;
  }
}

export interface ProbeOptions {
  /** The pilot's working area (its free disk is measured). */
  workdir: string;
  env: NodeJS.ProcessEnv;
  /** A declared CPU power (skips the benchmark), or null to measure. `false`: neither. */
  cpuPower: number | null | false;
  /** Skip the GPU tools (the operator declared the node has none). */
  skipGpus: boolean;
  /** Measures when no power is declared; given the node key (default: the benchmark, every time). */
  measureCpuPower?: (nodeKey: string) => Promise<{ power: number; cached: boolean }>;
}

export interface NodeProbe {
  node: NodeInfo;
  /** Cores of the hardware, before affinity and cgroup limits (a slot that has them all is the whole node). */
  hardwareCores: number;
  /** Whether a cgroup or CPU affinity limits what the pilot may use. */
  restricted: boolean;
  gpus: ProbedGpu[];
  /** Where node.cpuPower comes from. */
  cpuPowerSource: 'declared' | 'measured' | 'cached' | 'none';
}

export async function probeNode(options: ProbeOptions): Promise<NodeProbe> {
  const [distribution, cpuMax, memoryMax, cpuinfo, gpus, diskFree] = await Promise.all([
    readDistribution(),
    readCgroup('cpu.max'),
    readCgroup('memory.max'),
    readFile('/proc/cpuinfo', 'utf8').catch(() => null),
    options.skipGpus
      ? Promise.resolve([])
      : probeGpus({ run: runTool, graphics: () => pciDisplayControllers(), env: options.env }).catch(() => []),
    freeDiskMB(options.workdir),
  ]);
  const hardwareCores = Math.max(1, os.cpus().length);
  const cgroupCores = cpuMax === null ? null : parseCpuMax(cpuMax);
  const coreLimits = [hardwareCores, os.availableParallelism(), cgroupCores];
  const cores = Math.max(1, Math.min(...coreLimits.filter((n): n is number => typeof n === 'number' && n > 0)));
  const totalMB = Math.floor(os.totalmem() / (1024 * 1024));
  const cgroupMB = memoryMax === null ? null : parseMemoryMax(memoryMax);
  const memoryMB = cgroupMB === null ? totalMB : Math.min(totalMB, cgroupMB);
  const osName = distribution ?? `${os.type()} ${os.release()}`;
  const cpuModel = (cpuinfo === null ? null : cpuModelFromCpuinfo(cpuinfo)) ?? os.cpus()[0]?.model ?? 'unknown';
  const platform = detectPlatform(process.arch, cpuinfo);
  let cpuPower: number | null = null;
  let cpuPowerSource: NodeProbe['cpuPowerSource'] = 'none';
  if (options.cpuPower !== false && options.cpuPower !== null) {
    cpuPower = options.cpuPower;
    cpuPowerSource = 'declared';
  } else if (options.cpuPower === null) {
    const measure = options.measureCpuPower ?? (async () => ({ power: runCpuBenchmark().power, cached: false }));
    const measured = await measure([cpuModel, hardwareCores, os.release(), platform ?? ''].join('|'));
    cpuPower = measured.power;
    cpuPowerSource = measured.cached ? 'cached' : 'measured';
  }
  return {
    node: {
      hostname: clip(os.hostname(), 255),
      cores: Math.min(cores, 100_000),
      memoryMB: Math.max(0, memoryMB),
      os: clip(osName || os.platform(), 255),
      arch: clip(os.arch(), 64),
      cpuModel: clip(cpuModel || 'unknown', 255),
      kernel: clip(os.release(), 255),
      platform,
      cpuPower: cpuPower !== null && cpuPower > 0 ? cpuPower : null,
      gpus: gpus.slice(0, 64),
      diskFreeMB: diskFree,
    },
    hardwareCores,
    restricted: cores < hardwareCores || (cgroupMB !== null && cgroupMB < totalMB),
    gpus,
    cpuPowerSource,
  };
}
