/**
 * Facts about the node read straight from the kernel's files, with no process started: the PCI
 * display controllers (sysfs), the distribution (/etc/os-release) and the CPU model (/proc/cpuinfo).
 * They replaced systeminformation in the pilot: it cost a quarter of the bundle and started several
 * programs at every start-up (lspci, ip, dmidecode...), which is most of a pilot's start-up time on a
 * node where starting a process takes milliseconds.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { GraphicsController } from './gpu-probe.ts';

/** PCI vendor ids of display controllers, named as the PCI ID database (and lspci) names them. */
const PCI_VENDORS: Record<string, string> = {
  '0x10de': 'NVIDIA Corporation',
  '0x1002': 'Advanced Micro Devices, Inc. [AMD/ATI]',
  '0x8086': 'Intel Corporation',
  '0x1a03': 'ASPEED Technology, Inc.',
  '0x102b': 'Matrox Electronics Systems Ltd.',
};

const readTrimmed = (file: string): Promise<string | null> =>
  readFile(file, 'utf8').then(
    (text) => text.trim(),
    () => null,
  );

/**
 * Display controllers (PCI class 0x03: VGA, XGA, 3D) under `root` (default /sys/bus/pci/devices):
 * vendor by name, model as `device 0x....` (the name would need the PCI ID database), and memory
 * where the driver tells it (amdgpu's mem_info_vram_total, bytes).
 */
export async function pciDisplayControllers(root = '/sys/bus/pci/devices'): Promise<GraphicsController[]> {
  let devices: string[];
  try {
    devices = (await readdir(root)).sort();
  } catch {
    return [];
  }
  const controllers: GraphicsController[] = [];
  for (const device of devices) {
    const dir = path.join(root, device);
    const pciClass = await readTrimmed(path.join(dir, 'class'));
    if (pciClass === null || !pciClass.startsWith('0x03')) continue;
    const vendorId = (await readTrimmed(path.join(dir, 'vendor'))) ?? '';
    const deviceId = (await readTrimmed(path.join(dir, 'device'))) ?? '';
    const vramBytes = Number(await readTrimmed(path.join(dir, 'mem_info_vram_total')));
    controllers.push({
      vendor: PCI_VENDORS[vendorId] ?? `vendor ${vendorId}`,
      model: `device ${deviceId}`,
      vram: Number.isFinite(vramBytes) && vramBytes > 0 ? Math.floor(vramBytes / (1024 * 1024)) : null,
    });
  }
  return controllers;
}

/** "Debian GNU/Linux 12" from os-release's NAME and VERSION_ID (PRETTY_NAME without them), or null. */
export function distributionName(osRelease: string): string | null {
  const fields = new Map<string, string>();
  for (const line of osRelease.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) fields.set(match[1] as string, (match[2] as string).replace(/^(["'])(.*)\1$/, '$2'));
  }
  const name = fields.get('NAME');
  if (name) return [name, fields.get('VERSION_ID')].filter(Boolean).join(' ');
  return fields.get('PRETTY_NAME') ?? null;
}

export async function readDistribution(): Promise<string | null> {
  for (const file of ['/etc/os-release', '/usr/lib/os-release']) {
    const text = await readTrimmed(file);
    if (text !== null) return distributionName(text);
  }
  return null;
}

/** The CPU model as /proc/cpuinfo names it (x86 "model name", ARM "Model" or "CPU part"), or null. */
export function cpuModelFromCpuinfo(cpuinfo: string): string | null {
  for (const key of ['model name', 'Model', 'cpu model', 'Processor']) {
    const match = new RegExp(`^${key}\\s*:\\s*(.+)$`, 'm').exec(cpuinfo);
    if (match?.[1]) return match[1].trim();
  }
  return null;
}
