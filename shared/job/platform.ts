/**
 * Platforms are `ARCH` or `ARCH-vLEVEL` (x86-64 micro-architecture levels v1..v4; other architectures
 * level 1 unless given). A node of a higher level runs jobs built for a lower one of the same
 * architecture: an x86_64-v4 pilot runs x86_64-v2 jobs, never the reverse, never across architectures.
 */
export const ARCHITECTURES = ['x86_64', 'aarch64', 'ppc64le', 'riscv64'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

export interface Platform {
  arch: Architecture;
  level: number;
}

export const PLATFORM_PATTERN = /^(x86_64|aarch64|ppc64le|riscv64)(?:-v([1-9]))?$/;

const parsed = new Map<string, Platform | null>();

/** Parses (and remembers: matching asks for the same few platforms millions of times). */
export function parsePlatform(text: string): Platform | null {
  let platform = parsed.get(text);
  if (platform !== undefined) return platform;
  const match = PLATFORM_PATTERN.exec(text);
  platform = match ? { arch: match[1] as Architecture, level: match[2] ? Number(match[2]) : 1 } : null;
  if (parsed.size < 10_000) parsed.set(text, platform);
  return platform;
}

export function formatPlatform(platform: Platform): string {
  return `${platform.arch}-v${platform.level}`;
}

/** Whether a node of platform `node` can run a job built for `job`. */
export function platformRuns(node: Platform, job: Platform): boolean {
  return node.arch === job.arch && node.level >= job.level;
}
