/**
 * The node's platform in the form jobs ask for (`x86_64-v3`, `aarch64`): Node's architecture name
 * mapped to the one the toolchains use, and for x86-64 the micro-architecture level (psABI v1..v4)
 * read from the CPU flags in /proc/cpuinfo, the way glibc's hwcaps pick a level.
 */
import { formatPlatform, type Architecture } from '../shared/job/platform.ts';

/** Node's `process.arch` → the architecture names of shared/job/platform.ts. */
export function architectureOf(nodeArch: string): Architecture | null {
  switch (nodeArch) {
    case 'x64':
      return 'x86_64';
    case 'arm64':
      return 'aarch64';
    case 'ppc64':
      return 'ppc64le'; // Node only ships ppc64 little-endian builds
    case 'riscv64':
      return 'riscv64';
    default:
      return null;
  }
}

/**
 * The x86-64 psABI levels, each with the /proc/cpuinfo flag names of the features it adds.
 * (`pni` is SSE3, `abm` carries LZCNT; OSXSAVE is implied by the kernel listing `avx`.)
 */
const X86_64_LEVELS: readonly (readonly string[])[] = [
  ['cx16', 'lahf_lm', 'popcnt', 'pni', 'sse4_1', 'sse4_2', 'ssse3'],
  ['avx', 'avx2', 'bmi1', 'bmi2', 'f16c', 'fma', 'abm', 'movbe', 'xsave'],
  ['avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl'],
];

/** The first `flags` line of /proc/cpuinfo as a set (every core of a node lists the same flags). */
export function cpuFlags(cpuinfo: string): Set<string> {
  const line = /^flags\s*:\s*(.*)$/m.exec(cpuinfo);
  return new Set(
    (line?.[1] ?? '')
      .trim()
      .split(/\s+/)
      .filter((flag) => flag !== ''),
  );
}

/** The highest x86-64 level whose features are all present (and all below it): 1..4. */
export function x86_64Level(flags: ReadonlySet<string>): number {
  let level = 1;
  for (const features of X86_64_LEVELS) {
    if (!features.every((flag) => flags.has(flag))) break;
    level += 1;
  }
  return level;
}

/** `x86_64-v3`, `aarch64-v1`...; null on an architecture jobs cannot ask for. */
export function detectPlatform(nodeArch: string, cpuinfo: string | null): string | null {
  const arch = architectureOf(nodeArch);
  if (arch === null) return null;
  const level = arch === 'x86_64' && cpuinfo !== null ? x86_64Level(cpuFlags(cpuinfo)) : 1;
  return formatPlatform({ arch, level });
}
