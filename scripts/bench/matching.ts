/**
 * Matching benchmark. Builds a production-shaped waiting population straight into the matcher's SQLite
 * file, starts the real matcher (`dist/cli.mjs server`) as a child process, and drives it with N
 * simulated pilots over real WebSockets from this process: each pilot offers, waits for its match and
 * offers again at once. Measures matches/s, offer→match latency, submit→start latency for a parked
 * pilot, the matcher's RSS, and — in the same run — the raw WebSocket round-trip rate of a trivial echo
 * server, so the matcher's cost shows as a ratio to what the transport alone can do here.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { parseJobDescription } from '../../shared/job/description.ts';
import { encodeMessage, type MatcherMessage, type OfferResources } from '../../shared/protocol/messages.ts';
import { taskQueueDefinition } from '../../matcher/matching/task-queue-key.ts';
import { openSqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';
import { OS_TAGS, SITES, buildPopulation, seededRandom } from './population.ts';
import { fmt, median, percentile } from './stats.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(root, 'dist', 'cli.mjs');
const run = promisify(execFile);

export interface MatchingBenchOptions {
  jobs: number;
  pilots: number;
  durationSec: number;
  /** Counted rounds of durationSec each (after a warm-up); figures are the median round. */
  rounds: number;
  probes: number;
  progress(message: string): void;
}

export interface MatchingBenchResult {
  markdown: string;
}

/** Fills the store directly (not over HTTP), in batches, with the production-shaped population. */
export async function populate(
  dbPath: string,
  totalJobs: number,
  progress: (m: string) => void,
): Promise<{ taskQueues: number; seconds: number }> {
  const store = openSqliteJobStore({ path: dbPath });
  const started = process.hrtime.bigint();
  const population = buildPopulation(totalJobs);
  const at = new Date().toISOString();
  let done = 0;
  let batch: Parameters<typeof store.submitJobs>[0] = [];
  for (const tq of population) {
    const description = parseJobDescription({ executable: '/bin/true', ...tq.job });
    const definition = taskQueueDefinition(tq.ownership, description);
    for (let i = 0; i < tq.jobs; i += 1) {
      batch.push({ ownership: tq.ownership, description, taskQueue: definition });
      if (batch.length === 5000) {
        await store.submitJobs(batch, at);
        done += batch.length;
        batch = [];
        if (done % 100_000 === 0) progress(`populating: ${done}/${totalJobs} jobs`);
      }
    }
  }
  if (batch.length > 0) await store.submitJobs(batch, at);
  const taskQueues = (await store.listTaskQueues({})).length;
  await store.close();
  // The file was just written (~1 GB): flush it now, or the matcher's first checkpoints would wait
  // for that write-back and the first round would measure the population build.
  const file = await open(dbPath, 'r');
  await file.sync();
  await file.close();
  return { taskQueues, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

export async function startServer(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  // PH_BENCH_PROFILE=DIR writes a V8 CPU profile of the matcher there (for finding hot spots).
  const profile = process.env.PH_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PH_BENCH_PROFILE}`] : [];
  const child = spawn(
    process.execPath,
    [...profile, CLI, 'server', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--log-level', 'warn'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(stderr);
      if (match?.[1]) resolve(match[1]);
    });
    child.on('exit', (code) => reject(new Error(`matcher exited (${code}): ${stderr}`)));
  });
  return { child, url };
}

async function token(dataDir: string, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, 'token', 'issue', '--data-dir', dataDir, ...args]);
  return stdout.trim();
}

function rssMB(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then(
    (status) => Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024,
  );
}

/**
 * CPU seconds the process has used (user + system, all threads), from /proc/PID/stat. Per match it is
 * a figure that other load on the machine changes far less than matches/s.
 */
export async function cpuSec(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at state; utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SEC;
}
/** USER_HZ: 100 on every Linux this runs on. */
const CLOCK_TICKS_PER_SEC = 100;

/** A WebSocket pilot that resolves each frame it waits for; never sleeps. */
class SimPilot {
  readonly ws: WebSocket;
  #waiter: ((message: MatcherMessage) => void) | null = null;
  #matchSeq = 0;

  constructor(url: string, pilotToken: string) {
    this.ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/pilots/connect`, {
      headers: { authorization: `Bearer ${pilotToken}` },
      perMessageDeflate: false,
    });
    this.ws.on('message', (data) => {
      // Plain JSON.parse: the load generator must stay cheap so that it measures the matcher, not itself.
      const message = JSON.parse(String(data)) as MatcherMessage;
      if (message.type === 'ack') return;
      if (message.type === 'error') {
        process.stderr.write(`[bench] matcher error frame: ${message.code} ${message.message}\n`);
        return;
      }
      if (message.type === 'match') this.#matchSeq = message.matchSeq;
      const waiter = this.#waiter;
      this.#waiter = null;
      waiter?.(message);
    });
  }

  next(): Promise<MatcherMessage> {
    return new Promise((resolve) => (this.#waiter = resolve));
  }

  async hello(stamp: string, site: string): Promise<void> {
    await once(this.ws, 'open');
    const node = { hostname: stamp, cores: 8, memoryMB: 16_000, os: 'linux', arch: 'x86_64', cpuModel: 'bench' };
    const welcome = this.next();
    this.ws.send(
      encodeMessage({
        type: 'hello',
        pilotStamp: stamp,
        pilotVersion: 'bench',
        site,
        ce: `ce.${site}`,
        queue: 'q',
        node,
      }),
    );
    await welcome;
  }

  offer(resources: OfferResources): Promise<MatcherMessage> {
    const answer = this.next();
    this.ws.send(encodeMessage({ type: 'offer', offerId: `o${this.#matchSeq}`, matchSeq: this.#matchSeq, resources }));
    return answer;
  }
}

function pilotResources(random: () => number): OfferResources {
  const tags = OS_TAGS.filter(() => random() < 0.35);
  return { cores: 8, memoryMB: 16_000, wallTimeSec: 172_800, tags: [...tags, 'cvmfs:lhcb'], platform: 'x86_64-v3' };
}

/** Raw WebSocket round trips/s against an echo server answering with a match-sized frame. */
async function rawWebSocketRate(clients: number, durationSec: number): Promise<number> {
  const server = spawn(process.execPath, [path.join(root, 'scripts', 'bench', 'ws-echo-server.mjs')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(server.stdout!, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  const frame = encodeMessage({
    type: 'offer',
    offerId: 'o1',
    matchSeq: 1,
    resources: { cores: 8, memoryMB: 16_000, wallTimeSec: 172_800, tags: OS_TAGS.slice(0, 8), platform: 'x86_64-v3' },
  });
  let trips = 0;
  const deadline = Date.now() + durationSec * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
      await once(ws, 'open');
      while (Date.now() < deadline) {
        const reply = once(ws, 'message');
        ws.send(frame);
        await reply;
        trips += 1;
      }
      ws.close();
    }),
  );
  server.kill();
  return trips / durationSec;
}

/** Seconds of load before the counted rounds (JIT, caches, the first WAL checkpoints). */
const WARM_UP_SEC = 3;

interface LoadRig {
  /** The matcher's process id (for its CPU time). */
  pid: number;
  pilots: { pilot: SimPilot; resources: OfferResources; parked: boolean }[];
  probe: SimPilot;
  url: string;
  userToken: string;
  progress(message: string): void;
}

interface RoundFigures {
  matches: number;
  elapsedSec: number;
  latenciesMs: number[];
  probeLatenciesMs: number[];
  matcherCpuSec: number;
}

/** Every pilot offers, takes its match and offers again until the deadline; probes run alongside. */
async function loadRound(rig: LoadRig, durationSec: number, probes: number): Promise<RoundFigures> {
  const figures: RoundFigures = { matches: 0, elapsedSec: 0, latenciesMs: [], probeLatenciesMs: [], matcherCpuSec: 0 };
  const cpuAtStart = await cpuSec(rig.pid);
  const deadline = Date.now() + durationSec * 1000;
  const started = process.hrtime.bigint();
  const ticker = setInterval(
    () => rig.progress(`${figures.matches} matches, ${figures.probeLatenciesMs.length} probes`),
    1000,
  );
  const load = Promise.all(
    rig.pilots.map(async (entry) => {
      while (!entry.parked && Date.now() < deadline) {
        const t0 = process.hrtime.bigint();
        const answer = await entry.pilot.offer(entry.resources);
        if (answer.type !== 'match') {
          entry.parked = true; // nothing fits this pilot any more; it leaves the load
          return;
        }
        figures.latenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
        figures.matches += 1;
      }
    }),
  );
  // Submit→start for a parked pilot, measured while the load runs: the probe pilot only takes jobs
  // tagged bench:probe, so it parks; each probe job is submitted over REST and pushed to it.
  const probeJob = { executable: '/bin/true', requirements: { tags: ['bench:probe'], wallTimeSec: 600 } };
  for (let i = 0; i < probes && Date.now() < deadline - 200; i += 1) {
    const answer = await rig.probe.offer({
      cores: 1,
      memoryMB: 2000,
      wallTimeSec: 3600,
      tags: ['bench:probe'],
      requiredTags: ['bench:probe'],
    });
    if (answer.type !== 'parked') throw new Error(`the probe pilot should park, got ${answer.type}`);
    const pushed = rig.probe.next();
    const t0 = process.hrtime.bigint();
    const response = await fetch(`${rig.url}/api/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${rig.userToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(probeJob),
    });
    if (response.status !== 201)
      throw new Error(`probe submission failed: ${response.status} ${await response.text()}`);
    const match = await pushed;
    if (match.type === 'match') figures.probeLatenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  await load;
  clearInterval(ticker);
  figures.elapsedSec = Number(process.hrtime.bigint() - started) / 1e9;
  figures.matcherCpuSec = (await cpuSec(rig.pid)) - cpuAtStart;
  return figures;
}

export async function benchMatching(options: MatchingBenchOptions): Promise<MatchingBenchResult> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-'));
  const random = seededRandom(7);
  try {
    options.progress(`populating ${options.jobs} waiting jobs`);
    const population = await populate(path.join(dataDir, 'pilothouse.sqlite'), options.jobs, options.progress);
    options.progress(
      `populated ${population.taskQueues} task queues in ${fmt(population.seconds)} s; starting the matcher`,
    );
    const { child, url } = await startServer(dataDir);
    const pid = child.pid as number;
    const rssAfterStart = await rssMB(pid);
    const pilotToken = await token(dataDir, ['--kind', 'pilot', '--vo', 'lhcb']);
    const userToken = await token(dataDir, ['--kind', 'user', '--vo', 'lhcb', '--user', 'bench']);

    const pilots: SimPilot[] = [];
    for (let i = 0; i < options.pilots; i += 1) {
      const pilot = new SimPilot(url, pilotToken);
      await pilot.hello(`bench-${i}`, SITES[Math.floor(random() * SITES.length)] as string);
      pilots.push(pilot);
    }
    const probe = new SimPilot(url, pilotToken);
    await probe.hello('bench-probe', 'LCG.Probe.org');

    let peakRss = rssAfterStart;
    const rssTimer = setInterval(() => {
      void rssMB(pid).then((mb) => (peakRss = Math.max(peakRss, mb)));
    }, 250);
    const load: LoadRig = {
      pid,
      pilots: pilots.map((pilot) => ({ pilot, resources: pilotResources(random), parked: false })),
      probe,
      url,
      userToken,
      progress: options.progress,
    };
    options.progress(`warm-up: ${options.pilots} pilots offering for ${WARM_UP_SEC} s (not counted)`);
    await loadRound(load, WARM_UP_SEC, 0);
    const rounds: RoundFigures[] = [];
    for (let round = 1; round <= options.rounds; round += 1) {
      options.progress(
        `round ${round}/${options.rounds}: ${options.pilots} pilots offering for ${options.durationSec} s`,
      );
      rounds.push(await loadRound(load, options.durationSec, Math.ceil(options.probes / options.rounds)));
    }
    clearInterval(rssTimer);
    const rssEnd = await rssMB(pid);
    for (const pilot of [...pilots, probe]) pilot.ws.close();
    child.kill('SIGTERM');
    await once(child, 'exit');

    options.progress('measuring the raw WebSocket round-trip rate');
    const rawRate = await rawWebSocketRate(options.pilots, Math.min(options.durationSec, 10));
    const rates = rounds.map((r) => r.matches / r.elapsedSec);
    const p99s = rounds.map((r) => percentile(r.latenciesMs, 99));
    const allLatencies = rounds.flatMap((r) => r.latenciesMs);
    const probeLatencies = rounds.flatMap((r) => r.probeLatenciesMs);
    const rate = median(rates);
    const cpuPerMatchUs = rounds.map((r) => (r.matcherCpuSec / r.matches) * 1e6);
    const cpuShare = rounds.map((r) => r.matcherCpuSec / r.elapsedSec);
    const list = (values: number[], digits: number) => values.map((v) => fmt(v, digits)).join(', ');
    const markdown = [
      `Population: ${options.jobs.toLocaleString('en')} waiting jobs in ${population.taskQueues} task queues, 60 sites, 69 platform/OS combinations, 11 job types, one owner holding ~80% (built into SQLite in ${fmt(population.seconds)} s).`,
      `Load: ${options.pilots} simulated pilots over real WebSockets (one process), each offering 8 cores / 16 GB / 48 h with ~35% of the OS tags and re-offering as soon as it is matched; matcher = \`dist/cli.mjs server\` in its own process on the embedded SQLite store. A ${WARM_UP_SEC} s warm-up, then ${options.rounds} rounds of ${options.durationSec} s; figures are the median round (each round in brackets).`,
      '',
      '| figure | value |',
      '|---|---|',
      `| matches/s | **${fmt(rate, 0)}** (${list(rates, 0)}) |`,
      `| matcher CPU per match (all its threads; machine load changes it least) | ${fmt(median(cpuPerMatchUs), 0)} µs (${list(cpuPerMatchUs, 0)}) |`,
      `| matcher CPU use during the rounds | ${fmt(median(cpuShare), 2)} cores (${list(cpuShare, 2)}) |`,
      `| offer → match latency p50 | ${fmt(median(allLatencies), 2)} ms |`,
      `| offer → match latency p99 | **${fmt(median(p99s), 2)} ms** (${list(p99s, 2)}) |`,
      `| submit → match for a parked pilot (REST POST to pushed frame, under load) p50 / p99 (n=${probeLatencies.length}) | ${fmt(median(probeLatencies), 2)} ms / ${fmt(percentile(probeLatencies, 99), 2)} ms |`,
      `| raw WebSocket round trips/s, same clients, echo server (same run) | ${fmt(rawRate, 0)} |`,
      `| matches/s ÷ raw round trips/s | ${fmt(rate / rawRate, 2)} |`,
      `| matcher RSS after start / peak / end | ${fmt(rssAfterStart, 0)} / ${fmt(peakRss, 0)} / ${fmt(rssEnd, 0)} MB |`,
      `| pilots that ran out of fitting work (parked) | ${load.pilots.filter((p) => p.parked).length} |`,
    ].join('\n');
    return { markdown };
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}
