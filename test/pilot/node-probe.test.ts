/**
 * The probe's parsers on real output formats (no GPU and no batch system here): nvidia-smi's CSV,
 * rocm-smi's JSON, PCI display controllers from a sysfs replica, os-release and cpuinfo, the batch
 * system's visible-device lists, the x86-64 level from /proc/cpuinfo flags, and the CPU benchmark's
 * sanity.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  gpuEnvironment,
  gpusFromGraphics,
  parseNvidiaSmi,
  parseRocmSmi,
  probeGpus,
  restrictToVisible,
  type CommandRunner,
} from '../../pilot/gpu-probe.ts';
import { architectureOf, cpuFlags, detectPlatform, x86_64Level } from '../../pilot/platform-detect.ts';
import { runCpuBenchmark } from '../../pilot/cpu-power.ts';
import { onPath } from '../../pilot/probe.ts';
import {
  cpuModelFromCpuinfo,
  distributionName,
  pciDisplayControllers,
  readDistribution,
} from '../../pilot/system-facts.ts';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits` on a 4-GPU node. */
const NVIDIA_SMI = `0, GPU-6e6c7c2f-3a3e-b6d6-8f67-6d5e1b9a7c21, NVIDIA A100-SXM4-40GB, 40960
1, GPU-0f3c9a0d-44b1-2b3c-1d2e-9f8a7b6c5d4e, NVIDIA A100-SXM4-40GB, 40960
2, GPU-b7a1e2d3-1111-2222-3333-444455556666, NVIDIA H100 80GB HBM3, 81559
3, GPU-c8b2f3e4-7777-8888-9999-aaaabbbbcccc, Tesla T4, 15360
`;

/** `rocm-smi --showproductname --showmeminfo vram --showuniqueid --json` on a 2-GPU MI210 node (ROCm 5/6). */
const ROCM_SMI = JSON.stringify({
  card0: {
    'Unique ID': '0x18f68e602b8a790f',
    'VRAM Total Memory (B)': '68702699520',
    'VRAM Total Used Memory (B)': '10960896',
    'Card series': 'Instinct MI210',
    'Card model': '0x740f',
    'Card vendor': 'Advanced Micro Devices, Inc. [AMD/ATI]',
    'Card SKU': 'D67301',
    'GFX Version': 'gfx90a',
  },
  card1: {
    'Unique ID': '0x2a1b3c4d5e6f7081',
    'VRAM Total Memory (B)': '68702699520',
    'VRAM Total Used Memory (B)': '10960896',
    'Card Series': 'Instinct MI210',
    'Card SKU': 'D67301',
  },
  system: { 'Driver version': '6.2.4' },
});

/** This machine's first /proc/cpuinfo flags line (an Intel Xeon, Sapphire Rapids class: x86-64-v4). */
const XEON_FLAGS =
  'flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch cpuid_fault fsgsbase tsc_adjust bmi1 hle avx2 smep bmi2 erms invpcid rtm avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx_vnni avx512_bf16 arat avx512vbmi umip';

test('nvidia-smi CSV: index as the id, UUID, model, memory in MiB; failures and blank lines ignored', () => {
  const gpus = parseNvidiaSmi(NVIDIA_SMI);
  assert.equal(gpus.length, 4);
  assert.deepEqual(gpus[0], {
    id: '0',
    vendor: 'NVIDIA',
    model: 'NVIDIA A100-SXM4-40GB',
    memoryMB: 40960,
    uuid: 'GPU-6e6c7c2f-3a3e-b6d6-8f67-6d5e1b9a7c21',
  });
  assert.deepEqual(gpus.map((gpu) => [gpu.model, gpu.memoryMB]).slice(2), [
    ['NVIDIA H100 80GB HBM3', 81559],
    ['Tesla T4', 15360],
  ]);
  assert.deepEqual(
    parseNvidiaSmi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"),
    [],
  );
  assert.deepEqual(parseNvidiaSmi('No devices were found\n'), []);
  // A model name holding a comma keeps it; a memory of [N/A] becomes 0.
  assert.deepEqual(parseNvidiaSmi('0, GPU-1, Quadro RTX 8000, Rev. A, [N/A]\n')[0], {
    id: '0',
    vendor: 'NVIDIA',
    model: 'Quadro RTX 8000, Rev. A',
    memoryMB: 0,
    uuid: 'GPU-1',
  });
});

test('rocm-smi JSON: cards in index order, series as the model (either spelling), VRAM in MiB, UUID', () => {
  const gpus = parseRocmSmi(ROCM_SMI);
  assert.deepEqual(gpus, [
    { id: '0', vendor: 'AMD', model: 'Instinct MI210', memoryMB: 65520, uuid: '0x18f68e602b8a790f' },
    { id: '1', vendor: 'AMD', model: 'Instinct MI210', memoryMB: 65520, uuid: '0x2a1b3c4d5e6f7081' },
  ]);
  assert.deepEqual(parseRocmSmi('ERROR: No AMD GPUs found'), []);
});

test('PCI view: NVIDIA and AMD compute GPUs counted, BMC graphics and small integrated chips not', () => {
  const gpus = gpusFromGraphics([
    { vendor: 'ASPEED Technology, Inc.', model: 'ASPEED Graphics Family', vram: 16 },
    { vendor: 'NVIDIA Corporation', model: 'GA100 [A100 SXM4 40GB]', vram: 40960 },
    { vendor: 'Advanced Micro Devices, Inc. [AMD/ATI]', model: 'Aldebaran/MI200 [Instinct MI210]', vram: 65536 },
    { vendor: 'Advanced Micro Devices, Inc. [AMD/ATI]', model: 'Raphael', vram: 512 },
    { vendor: 'Matrox Electronics Systems Ltd.', model: 'MGA G200eW WPCM450', vram: null },
  ]);
  assert.deepEqual(
    gpus.map((gpu) => [gpu.id, gpu.vendor, gpu.memoryMB]),
    [
      ['0', 'NVIDIA', 40960],
      ['1', 'AMD', 65536],
    ],
  );
});

test("the batch system's visible devices: only those, named as it names them (index or UUID)", () => {
  const gpus = parseNvidiaSmi(NVIDIA_SMI);
  assert.deepEqual(
    restrictToVisible(gpus, '1,3').map((gpu) => [gpu.id, gpu.model]),
    [
      ['1', 'NVIDIA A100-SXM4-40GB'],
      ['3', 'Tesla T4'],
    ],
  );
  const byUuid = restrictToVisible(gpus, 'GPU-b7a1e2d3-1111-2222-3333-444455556666');
  assert.deepEqual(
    byUuid.map((gpu) => [gpu.id, gpu.model]),
    [['GPU-b7a1e2d3-1111-2222-3333-444455556666', 'NVIDIA H100 80GB HBM3']],
  );
  // Renumbered inside a device cgroup: the tool sees 0,1 while the batch system says 2,3.
  assert.deepEqual(
    restrictToVisible(gpus.slice(0, 2), '2,3').map((gpu) => gpu.id),
    ['2', '3'],
  );
  assert.deepEqual(restrictToVisible(gpus, ''), []);
  assert.deepEqual(restrictToVisible(gpus, 'NoDevFiles'), []);
  assert.equal(restrictToVisible(gpus, undefined).length, 4);
});

test('probeGpus: vendor tools first, one vendor per node, PCI view as the fallback', async () => {
  const tools =
    (outputs: Record<string, string | null>): CommandRunner =>
    async (command) =>
      outputs[command] ?? null;
  const graphics = async () => [{ vendor: 'NVIDIA Corporation', model: 'GA100', vram: 40960 }];
  assert.equal((await probeGpus({ run: tools({ 'nvidia-smi': NVIDIA_SMI }), graphics, env: {} })).length, 4);
  assert.equal(
    (await probeGpus({ run: tools({ 'nvidia-smi': NVIDIA_SMI }), graphics, env: { CUDA_VISIBLE_DEVICES: '0' } }))
      .length,
    1,
  );
  assert.equal(
    (await probeGpus({ run: tools({ 'rocm-smi': ROCM_SMI }), graphics, env: { ROCR_VISIBLE_DEVICES: '1' } }))[0]?.id,
    '1',
  );
  const both = await probeGpus({ run: tools({ 'nvidia-smi': NVIDIA_SMI, 'rocm-smi': ROCM_SMI }), graphics, env: {} });
  assert.deepEqual([...new Set(both.map((gpu) => gpu.vendor))], ['NVIDIA']);
  assert.deepEqual(
    (await probeGpus({ run: tools({}), graphics, env: {} })).map((gpu) => gpu.model),
    ['GA100'],
  );
  assert.deepEqual(await probeGpus({ run: tools({}), graphics: async () => [], env: {} }), []);
});

test("a job's GPU environment names its GPUs for every runtime; no GPU means an empty list", () => {
  assert.deepEqual(gpuEnvironment([{ id: '1' }, { id: '3' }]), {
    CUDA_VISIBLE_DEVICES: '1,3',
    ROCR_VISIBLE_DEVICES: '1,3',
    HIP_VISIBLE_DEVICES: '1,3',
    GPU_DEVICE_ORDINAL: '1,3',
    PILOTHOUSE_JOB_GPUS: '1,3',
  });
  assert.equal(gpuEnvironment([]).CUDA_VISIBLE_DEVICES, '');
});

test('platform: x86-64 levels from the CPU flags, other architectures at level 1', () => {
  assert.equal(x86_64Level(cpuFlags(XEON_FLAGS)), 4);
  const v3 = XEON_FLAGS.replace(/ avx512\w*/g, '');
  assert.equal(x86_64Level(cpuFlags(v3)), 3);
  assert.equal(x86_64Level(cpuFlags(v3.replace(' avx2', ''))), 2, 'no AVX2: v2');
  assert.equal(x86_64Level(cpuFlags(v3.replace(' popcnt', ''))), 1, 'a level needs every feature of the levels below');
  assert.equal(x86_64Level(cpuFlags('flags : fpu sse sse2')), 1);
  assert.equal(detectPlatform('x64', XEON_FLAGS), 'x86_64-v4');
  assert.equal(detectPlatform('x64', null), 'x86_64-v1');
  assert.equal(detectPlatform('arm64', 'Features : fp asimd'), 'aarch64-v1');
  assert.equal(detectPlatform('ppc64', null), 'ppc64le-v1');
  assert.equal(architectureOf('ia32'), null);
});

test('CPU benchmark: a positive power per core, from a measured CPU time', () => {
  const result = runCpuBenchmark(200_000);
  assert.ok(result.cpuSec > 0);
  assert.ok(result.power > 0 && Number.isFinite(result.power), JSON.stringify(result));
  assert.equal(Math.round(result.power * 10) / 10, result.power, 'rounded to 0.1 like DIRAC');
});

test('PCI display controllers from sysfs: class 0x03 only, vendors named, VRAM where amdgpu gives it', async () => {
  // A replica of /sys/bus/pci/devices on a node with a BMC chip, an A100 and an MI210 (and a NIC).
  const root = await mkdtemp(path.join(tmpdir(), 'sysfs-pci-'));
  const devices: Record<string, Record<string, string>> = {
    '0000:03:00.0': { class: '0x030000\n', vendor: '0x1a03\n', device: '0x2000\n' },
    '0000:17:00.0': { class: '0x030200\n', vendor: '0x10de\n', device: '0x20b0\n' },
    '0000:c1:00.0': {
      class: '0x038000\n',
      vendor: '0x1002\n',
      device: '0x740f\n',
      mem_info_vram_total: '68702699520\n',
    },
    '0000:41:00.0': { class: '0x020000\n', vendor: '0x15b3\n', device: '0x101b\n' },
  };
  for (const [device, files] of Object.entries(devices)) {
    await mkdir(path.join(root, device));
    for (const [name, content] of Object.entries(files)) await writeFile(path.join(root, device, name), content);
  }
  const controllers = await pciDisplayControllers(root);
  assert.deepEqual(controllers, [
    { vendor: 'ASPEED Technology, Inc.', model: 'device 0x2000', vram: null },
    { vendor: 'NVIDIA Corporation', model: 'device 0x20b0', vram: null },
    { vendor: 'Advanced Micro Devices, Inc. [AMD/ATI]', model: 'device 0x740f', vram: 65520 },
  ]);
  assert.deepEqual(
    gpusFromGraphics(controllers).map((gpu) => [gpu.vendor, gpu.memoryMB]),
    [
      ['NVIDIA', 0],
      ['AMD', 65520],
    ],
  );
  assert.deepEqual(await pciDisplayControllers(path.join(root, 'missing')), []);
  await rm(root, { recursive: true, force: true });
});

test('distribution, CPU model and tools on PATH, without starting a process', async () => {
  assert.equal(
    distributionName('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'),
    'Debian GNU/Linux 12',
  );
  assert.equal(distributionName('NAME="AlmaLinux"\nVERSION_ID="9.4"\n'), 'AlmaLinux 9.4');
  assert.equal(distributionName("PRETTY_NAME='Some Linux'\n"), 'Some Linux');
  assert.equal(distributionName('garbage'), null);
  assert.equal(
    cpuModelFromCpuinfo('processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n'),
    'AMD EPYC 7B13 64-Core Processor',
  );
  assert.equal(cpuModelFromCpuinfo('processor\t: 0\nCPU part\t: 0xd0c\n'), null);
  assert.equal(await onPath('sh'), true);
  assert.equal(await onPath('no-such-tool-here'), false);
  assert.equal(await onPath('/bin/sh'), true);
  assert.equal(await onPath('nvidia-smi', '/nonexistent'), false);
  // This machine, as the probe reads it: its os-release NAME comes first.
  const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => null);
  const name = osRelease === null ? null : /^NAME="?([^"\n]+)"?$/m.exec(osRelease)?.[1];
  if (name) assert.ok((await readDistribution())?.startsWith(name), `"${name}" first`);
  else assert.equal(await readDistribution(), osRelease === null ? null : distributionName(osRelease));
});
