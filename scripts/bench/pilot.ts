/**
 * The pilot bundle benchmark: dist/pilot.mjs's size (raw and gzipped: what a site director ships per
 * pilot) and its start-up time, from process start to the first offer reaching a real matcher started
 * in this process (port 0, fresh data directory). Each run is a fresh `node dist/pilot.mjs` with its
 * own working directory; the time is taken when the matcher handles that pilot's first offer. Runs
 * are sequential (one pilot at a time) and the median is reported, with the spread. Baselines in the
 * same run: `node -e 0` (Node.js alone), `--help` (loading the bundle only, with and without the
 * compiled code an earlier pilot kept), a pilot compiling the bundle from source, and a pilot with a
 * declared `--cpu-power` (no CPU benchmark), so each part's share is visible; and a pilot whose matcher
 * is behind a relay adding 50 ms round trips, as a matcher across a network would be.
 *
 *   npm run bench -- --scenario pilot        (PILOT_BENCH_RUNS=N to change the number of runs, default 15)
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { silentLogger } from '../../shared/logger.ts';
import { compileMatcherConfig } from '../../matcher/config.ts';
import { startMatcher } from '../../matcher/server.ts';
import { CODE_CACHE_ENV } from '../../pilot/code-cache.ts';
import { startLatencyRelay } from './latency-relay.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUNDLE = path.join(root, 'dist', 'pilot.mjs');
/** Bytes of the minified pilot program by package or folder, written by the build (scripts/build.mjs). */
const PARTS = path.join(root, 'dist', 'pilot-parts.json');

/** Parts of at least 1 % of the program each, largest first, the rest summed up on one row. */
function partsTable(parts: Record<string, number>): string {
  const total = Object.values(parts).reduce((sum, bytes) => sum + bytes, 0);
  const entries = Object.entries(parts).sort((a, b) => b[1] - a[1]);
  const shown = entries.filter(([, bytes]) => bytes >= total / 100);
  const rest = entries.slice(shown.length);
  const row = (what: string, bytes: number): string =>
    `| ${what} | ${(bytes / 1024).toFixed(1)} | ${((100 * bytes) / total).toFixed(1)} % |`;
  return [
    '| package or folder | KiB | share |',
    '| --- | ---: | ---: |',
    ...shown.map(([what, bytes]) => row(what === 'pilot/' || what === 'shared/' ? `\`${what}\` (ours)` : what, bytes)),
    row(
      `${rest.length} smaller packages`,
      rest.reduce((sum, [, bytes]) => sum + bytes, 0),
    ),
    row('**the program**', total),
  ].join('\n');
}

interface Spread {
  median: number;
  min: number;
  max: number;
  p90: number;
}

function spread(samples: readonly number[]): Spread {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number): number =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? NaN;
  return { median: at(0.5), min: sorted[0] ?? NaN, max: sorted.at(-1) ?? NaN, p90: at(0.9) };
}

/** How far the relayed matcher is, each way, ms. */
const RELAY_ONE_WAY_MS = 25;

/** A start-up slower than this is a failure, not a figure. */
const START_DEADLINE_SEC = 30;

const ms = (value: number): string => `${Math.round(value)} ms`;

function machine(): string {
  const cpus = os.cpus();
  return [
    `- CPU: ${cpus[0]?.model ?? 'unknown'} × ${cpus.length}`,
    `- memory: ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `- OS: ${os.type()} ${os.release()} (${os.arch()})`,
    `- Node.js: ${process.version}`,
  ].join('\n');
}

/** Wall time of `node ARGS` to its exit (0 expected). */
async function timeNode(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: 'ignore', env });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`node ${args.join(' ')} exited ${code}`);
  return performance.now() - started;
}

export async function benchPilot(
  options: { runs?: number; progress?: (message: string) => void } = {},
): Promise<string> {
  const runs = options.runs ?? Number(process.env['PILOT_BENCH_RUNS'] ?? 15);
  const progress = options.progress ?? ((message: string) => process.stderr.write(`[bench:pilot] ${message}\n`));
  for (const built of [BUNDLE, PARTS]) {
    if (!existsSync(built)) throw new Error(`${path.relative(root, built)} is missing: run npm run build first`);
  }
  const parts = JSON.parse(await readFile(PARTS, 'utf8')) as Record<string, number>;
  const bytes = await readFile(BUNDLE);
  const { size } = await stat(BUNDLE);
  const gzipped = gzipSync(bytes, { level: 9 }).length;

  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-pilot-'));
  const matcher = await startMatcher(compileMatcherConfig({ dataDir, listen: '127.0.0.1:0' }), {
    logger: silentLogger(),
  });
  // The moment the matcher handles each pilot's first offer.
  const firstOffer = new Map<string, number>();
  const waiting = new Map<string, () => void>();
  const matchService = matcher.matchService;
  // Every offer reaches findMatches (findMatch is findMatches for one job).
  const findMatches = matchService.findMatches.bind(matchService);
  matchService.findMatches = (async (...args: Parameters<typeof findMatches>) => {
    const pilotId = args[1];
    if (!firstOffer.has(pilotId)) {
      firstOffer.set(pilotId, performance.now());
      waiting.get(pilotId)?.();
    }
    return findMatches(...args);
  }) as typeof matchService.findMatches;

  const token = await matcher.tokens.issue({
    kind: 'pilot',
    subject: 'bench',
    vo: 'local',
    group: 'local_pilot',
    properties: ['GenericPilot'],
    site: '*',
    ttlSec: 3600,
  });
  const work = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-work-'));
  const tokenFile = path.join(work, 'pilot.token');
  await writeFile(tokenFile, token, { mode: 0o600 });

  // The same matcher RELAY_ONE_WAY_MS away: start-up where the network's round trips count.
  const relay = await startLatencyRelay(matcher.url, RELAY_ONE_WAY_MS);
  const startOnce = async (
    stamp: string,
    extra: string[],
    extraEnv: Record<string, string> = {},
    matcherUrl = matcher.url,
  ): Promise<number> => {
    const reached = new Promise<void>((resolve) => waiting.set(stamp, resolve));
    const started = performance.now();
    const child = spawn(
      process.execPath,
      [
        BUNDLE,
        '--matcher',
        matcherUrl,
        '--token-file',
        tokenFile,
        '--stamp',
        stamp,
        '--site',
        'Bench.site',
        '--workdir',
        path.join(work, stamp),
        '--drain-file',
        'none',
        '--idle-timeout-sec',
        '600',
        '--log-level',
        'warn',
        ...extra,
      ],
      // Their own temporary directory: the CPU power and compiled code a pilot keeps for the next ones
      // live there.
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: work, ...extraEnv } },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, 'exit');
    // A pilot that never offers fails the run at once instead of idling until its own timeout.
    let deadline: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        reached,
        exited.then(() => Promise.reject(new Error(`pilot ${stamp} exited before offering: ${stderr}`))),
        new Promise((_, reject) => {
          deadline = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`pilot ${stamp} did not offer within ${START_DEADLINE_SEC} s: ${stderr}`));
          }, START_DEADLINE_SEC * 1000);
        }),
      ]);
    } finally {
      clearTimeout(deadline);
    }
    const elapsed = (firstOffer.get(stamp) as number) - started;
    child.kill('SIGTERM'); // idle: it cancels its parked offer, says bye and exits
    await exited;
    return elapsed;
  };

  try {
    progress(`bundle ${(size / 1024).toFixed(0)} KiB; ${runs} runs of each start-up variant`);
    await startOnce('warm-up', []); // fills the page cache and keeps the compiled code; not counted
    const bare: number[] = [];
    const help: number[] = [];
    const helpCompiled: number[] = [];
    const first: number[] = [];
    const next: number[] = [];
    const nextCompiled: number[] = [];
    const declared: number[] = [];
    const far: number[] = [];
    for (let i = 0; i < runs; i += 1) {
      bare.push(await timeNode(['-e', '0']));
      help.push(await timeNode([BUNDLE, '--help'], { ...process.env, TMPDIR: work }));
      helpCompiled.push(await timeNode([BUNDLE, '--help'], { ...process.env, [CODE_CACHE_ENV]: 'off' }));
      // A node's first pilot: nothing kept, it compiles the bundle and runs the CPU benchmark.
      first.push(await startOnce(`bench-first-${i}`, ['--cpu-power-cache-sec', '0'], { [CODE_CACHE_ENV]: 'off' }));
      next.push(await startOnce(`bench-${i}`, []));
      nextCompiled.push(await startOnce(`bench-compiled-${i}`, [], { [CODE_CACHE_ENV]: 'off' }));
      declared.push(await startOnce(`bench-declared-${i}`, ['--cpu-power', '10']));
      far.push(await startOnce(`bench-far-${i}`, [], {}, relay.url));
    }
    const b = spread(bare);
    const h = spread(help);
    const hc = spread(helpCompiled);
    const f = spread(first);
    const n = spread(next);
    const nc = spread(nextCompiled);
    const d = spread(declared);
    const r = spread(far);
    progress(
      `first offer: median ${ms(n.median)} (compiled from source ${ms(nc.median)}, a node's first pilot ${ms(f.median)}, declared CPU power ${ms(d.median)}); --help ${ms(h.median)}`,
    );
    return [
      '## Pilot bundle',
      '',
      `Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench -- --scenario pilot\` (${runs} runs of each, one pilot at a time, after one warm-up run) on:`,
      '',
      machine(),
      '',
      '| | |',
      '|---|---|',
      `| \`dist/pilot.mjs\` size | ${(size / 1024).toFixed(0)} KiB (${size.toLocaleString('en')} bytes), ${(gzipped / 1024).toFixed(0)} KiB gzipped; one file, no native module |`,
      `| start-up, process start → first offer at the matcher (the node's CPU power and the bundle's compiled code kept by an earlier pilot) | **median ${ms(n.median)}** (min ${ms(n.min)}, p90 ${ms(n.p90)}, max ${ms(n.max)}) |`,
      `| same, the bundle compiled from source (\`${CODE_CACHE_ENV}=off\`) | median ${ms(nc.median)} (min ${ms(nc.min)}, p90 ${ms(nc.p90)}, max ${ms(nc.max)}) |`,
      `| same, a node's first pilot (compiles the bundle and runs the CPU benchmark: \`${CODE_CACHE_ENV}=off\`, \`--cpu-power-cache-sec 0\`) | median ${ms(f.median)} (min ${ms(f.min)}, p90 ${ms(f.p90)}, max ${ms(f.max)}) |`,
      `| same, the matcher at a ${2 * RELAY_ONE_WAY_MS} ms round trip (a relay holds each chunk ${RELAY_ONE_WAY_MS} ms each way; the WebSocket is opened while the node is probed) | median ${ms(r.median)} (min ${ms(r.min)}, p90 ${ms(r.p90)}) |`,
      `| same, CPU power declared (\`--cpu-power\`, no benchmark) | median ${ms(d.median)} (min ${ms(d.min)}, p90 ${ms(d.p90)}) |`,
      `| \`node dist/pilot.mjs --help\` (load the bundle only, compiled code kept) | median ${ms(h.median)} (min ${ms(h.min)}, p90 ${ms(h.p90)}) |`,
      `| same, compiled from source (\`${CODE_CACHE_ENV}=off\`) | median ${ms(hc.median)} (min ${ms(hc.min)}, p90 ${ms(hc.p90)}) |`,
      `| \`node -e 0\` (Node.js alone, on this machine at this time) | median ${ms(b.median)} (min ${ms(b.min)}, p90 ${ms(b.p90)}) |`,
      '',
      'Start-up covers Node starting, loading the bundle (compiling it, or taking the code a pilot of the same',
      'bundle and Node.js kept in the temporary directory), probing the node (cores, memory, GPUs, disk, platform,',
      "the CPU power: the ~0.1 s benchmark on a node's first pilot, read back by the next ones for a day),",
      'asking the batch system for time left, opening the WebSocket, hello and welcome, and the first offer.',
      'The matcher runs in the benchmark process on the same machine.',
      '',
      "What each dependency costs: bytes of the minified pilot program by the package they come from (esbuild's",
      'metafile, written by the build to `dist/pilot-parts.json`; a package counted apart from the packages that',
      'pull it in). The loader around the program and the escaping of it as a string make up the rest of the file.',
      '',
      partsTable(parts),
    ].join('\n');
  } finally {
    await relay.close();
    await matcher.stop();
    await rm(dataDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${await benchPilot()}\n`);
}
