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
import pg from 'pg';
import WebSocket from 'ws';
import { parseJobDescription } from '../../shared/job/description.ts';
import { encodeMessage, type OfferResources } from '../../shared/protocol/messages.ts';
import { taskQueueDefinition } from '../../matcher/matching/task-queue-key.ts';
import { openSqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';
import { openPgJobStore } from '../../matcher/store/postgres/pg-job-store.ts';
import type { JobStore } from '../../matcher/store/job-store.ts';
import { OS_TAGS, SITES, buildPopulation, seededRandom, type PopulationTaskQueue } from './population.ts';
import { SimPilot } from './sim-pilot.ts';
import { fmt, median, percentile } from './stats.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(root, 'dist', 'cli.mjs');
const run = promisify(execFile);

export interface MatchingBenchOptions {
  jobs: number;
  pilots: number;
  /** A PostgreSQL URL: the same load also runs on it with one matcher and with two replicas. */
  db?: string | undefined;
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
/** Fills a store directly (not over HTTP), in batches, with the production-shaped population. */
async function fill(
  store: JobStore,
  totalJobs: number | readonly PopulationTaskQueue[],
  progress: (m: string) => void,
): Promise<number> {
  const population = typeof totalJobs === 'number' ? buildPopulation(totalJobs) : totalJobs;
  const total = population.reduce((sum, tq) => sum + tq.jobs, 0);
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
        if (done % 100_000 === 0) progress(`populating: ${done}/${total} jobs`);
      }
    }
  }
  if (batch.length > 0) await store.submitJobs(batch, at);
  return (await store.listTaskQueues({})).length;
}

export async function populate(
  dbPath: string,
  totalJobs: number | readonly PopulationTaskQueue[],
  progress: (m: string) => void,
): Promise<{ taskQueues: number; seconds: number }> {
  const store = openSqliteJobStore({ path: dbPath });
  const started = process.hrtime.bigint();
  const taskQueues = await fill(store, totalJobs, progress);
  await store.close();
  // The file was just written (~1 GB): flush it now, or the matcher's first checkpoints would wait
  // for that write-back and the first round would measure the population build.
  const file = await open(dbPath, 'r');
  await file.sync();
  await file.close();
  return { taskQueues, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

async function populatePostgres(
  url: string,
  schema: string,
  totalJobs: number,
  progress: (m: string) => void,
): Promise<{ taskQueues: number; seconds: number }> {
  const store = await openPgJobStore({ url, schema });
  const started = process.hrtime.bigint();
  const taskQueues = await fill(store, totalJobs, progress);
  await store.close();
  return { taskQueues, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

export async function startServer(
  dataDir: string,
  db?: string,
  extraArgs: readonly string[] = [],
): Promise<{ child: ChildProcess; url: string }> {
  // PH_BENCH_PROFILE=DIR writes a V8 CPU profile of the matcher there (for finding hot spots).
  const profile = process.env.PH_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PH_BENCH_PROFILE}`] : [];
  const child = spawn(
    process.execPath,
    [
      ...profile,
      CLI,
      'server',
      '--data-dir',
      dataDir,
      '--listen',
      '127.0.0.1:0',
      '--log-level',
      'warn',
      ...(db === undefined ? [] : ['--db', db]),
      ...extraArgs,
    ],
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

export async function token(dataDir: string, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, 'token', 'issue', '--data-dir', dataDir, ...args]);
  return stdout.trim();
}

export function rssMB(pid: number): Promise<number> {
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

export function pilotResources(random: () => number): OfferResources {
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
  /** The matchers' process ids (for their CPU time). */
  pids: number[];
  pilots: { pilot: SimPilot; resources: OfferResources; parked: boolean }[];
  probe: SimPilot;
  url: string;
  userToken: string;
  progress(message: string): void;
}

export interface RoundFigures {
  matches: number;
  elapsedSec: number;
  latenciesMs: number[];
  probeLatenciesMs: number[];
  matcherCpuSec: number;
}

const PROBE_JOB = { executable: '/bin/true', requirements: { tags: ['bench:probe'], wallTimeSec: 600 } };

/**
 * One submit → push: the probe pilot only takes jobs tagged bench:probe, so it parks; a probe job is
 * submitted over REST (through the first replica) and pushed to it (on the last). Milliseconds, or
 * null if what came was not a match.
 */
async function probeOnce(rig: LoadRig): Promise<number | null> {
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
    body: JSON.stringify(PROBE_JOB),
  });
  if (response.status !== 201) throw new Error(`probe submission failed: ${response.status} ${await response.text()}`);
  const match = await pushed;
  return match.type === 'match' ? Number(process.hrtime.bigint() - t0) / 1e6 : null;
}

/** Submit → push measured before the load starts (nothing else running), per store setup. */
const IDLE_PROBES = 40;

/** Every pilot offers, takes its match and offers again until the deadline; probes run alongside. */
async function loadRound(rig: LoadRig, durationSec: number, probes: number): Promise<RoundFigures> {
  const figures: RoundFigures = { matches: 0, elapsedSec: 0, latenciesMs: [], probeLatenciesMs: [], matcherCpuSec: 0 };
  const cpuOf = async (): Promise<number> => (await Promise.all(rig.pids.map(cpuSec))).reduce((a, b) => a + b, 0);
  const cpuAtStart = await cpuOf();
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
  // Submit→start for a parked pilot, measured while the load runs.
  for (let i = 0; i < probes && Date.now() < deadline - 200; i += 1) {
    const latencyMs = await probeOnce(rig);
    if (latencyMs !== null) figures.probeLatenciesMs.push(latencyMs);
  }
  await load;
  clearInterval(ticker);
  figures.elapsedSec = Number(process.hrtime.bigint() - started) / 1e9;
  figures.matcherCpuSec = (await cpuOf()) - cpuAtStart;
  return figures;
}

/** One store setup under the same load: its matcher processes and what they ran on. */
export interface StoreRun {
  label: string;
  rounds: RoundFigures[];
  idleProbeLatenciesMs: number[];
  rssAfterStart: number;
  peakRss: number;
  rssEnd: number;
  parked: number;
}

/** Starts `replicas` matchers on the data directory (and database), drives them, stops them. */
export async function runLoad(
  label: string,
  dataDir: string,
  db: string | undefined,
  replicas: number,
  options: MatchingBenchOptions,
): Promise<StoreRun> {
  const random = seededRandom(7);
  const servers: { child: ChildProcess; url: string }[] = [];
  // All simulated pilots share one token: the per-token connection cap is raised to let them in.
  const extraArgs = ['--max-connections-per-token', String(options.pilots + 10)];
  for (let i = 0; i < replicas; i += 1) servers.push(await startServer(dataDir, db, extraArgs));
  const pids = servers.map((server) => server.child.pid as number);
  const rssOf = async (): Promise<number> => (await Promise.all(pids.map(rssMB))).reduce((a, b) => a + b, 0);
  const rssAfterStart = await rssOf();
  const pilotToken = await token(dataDir, ['--kind', 'pilot', '--vo', 'lhcb']);
  const userToken = await token(dataDir, ['--kind', 'user', '--vo', 'lhcb', '--user', 'bench']);
  const pilots: SimPilot[] = [];
  for (let i = 0; i < options.pilots; i += 1) {
    // Pilots spread over the replicas, as a load balancer would.
    const pilot = new SimPilot((servers[i % replicas] as { url: string }).url, pilotToken);
    await pilot.hello(`bench-${i}`, SITES[Math.floor(random() * SITES.length)] as string);
    pilots.push(pilot);
  }
  // The probe pilot waits on the last replica and its jobs are submitted through the first: with two
  // replicas, submit → push crosses from one to the other.
  const probe = new SimPilot((servers[replicas - 1] as { url: string }).url, pilotToken);
  await probe.hello('bench-probe', 'LCG.Probe.org');
  let peakRss = rssAfterStart;
  const rssTimer = setInterval(() => {
    void rssOf().then((mb) => (peakRss = Math.max(peakRss, mb)));
  }, 250);
  const load: LoadRig = {
    pids,
    pilots: pilots.map((pilot) => ({ pilot, resources: pilotResources(random), parked: false })),
    probe,
    url: (servers[0] as { url: string }).url,
    userToken,
    progress: options.progress,
  };
  options.progress(`${label}: ${IDLE_PROBES} submit → push probes with no load`);
  const idleProbeLatenciesMs: number[] = [];
  for (let i = 0; i < IDLE_PROBES; i += 1) {
    const latencyMs = await probeOnce(load);
    if (latencyMs !== null) idleProbeLatenciesMs.push(latencyMs);
  }
  options.progress(`${label}: warm-up, ${options.pilots} pilots offering for ${WARM_UP_SEC} s (not counted)`);
  await loadRound(load, WARM_UP_SEC, 0);
  const rounds: RoundFigures[] = [];
  for (let round = 1; round <= options.rounds; round += 1) {
    options.progress(
      `${label}: round ${round}/${options.rounds}, ${options.pilots} pilots offering for ${options.durationSec} s`,
    );
    rounds.push(await loadRound(load, options.durationSec, Math.ceil(options.probes / options.rounds)));
  }
  clearInterval(rssTimer);
  const rssEnd = await rssOf();
  for (const pilot of [...pilots, probe]) pilot.ws.close();
  for (const server of servers) {
    server.child.kill('SIGTERM');
    await once(server.child, 'exit');
  }
  return {
    label,
    rounds,
    idleProbeLatenciesMs,
    rssAfterStart,
    peakRss,
    rssEnd,
    parked: load.pilots.filter((p) => p.parked).length,
  };
}

export async function benchMatching(options: MatchingBenchOptions): Promise<MatchingBenchResult> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-'));
  try {
    options.progress(`populating ${options.jobs} waiting jobs`);
    const population = await populate(path.join(dataDir, 'pilothouse.sqlite'), options.jobs, options.progress);
    options.progress(
      `populated ${population.taskQueues} task queues in ${fmt(population.seconds)} s; starting the matcher`,
    );
    const sqlite = await runLoad('SQLite', dataDir, undefined, 1, options);
    const runs: StoreRun[] = [sqlite];
    let pgPopulation: { taskQueues: number; seconds: number } | null = null;
    if (options.db !== undefined) {
      const schema = `ph_bench_${process.pid}`;
      const pgDir = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-pg-'));
      try {
        options.progress(`populating PostgreSQL (schema ${schema}) with ${options.jobs} waiting jobs`);
        pgPopulation = await populatePostgres(options.db, schema, options.jobs, options.progress);
        const db = `${options.db}${options.db.includes('?') ? '&' : '?'}schema=${schema}`;
        runs.push(await runLoad('PostgreSQL, 1 matcher', pgDir, db, 1, options));
        runs.push(await runLoad('PostgreSQL, 2 replicas', pgDir, db, 2, options));
      } finally {
        const client = new pg.Client({ connectionString: options.db });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await client.end();
        await rm(pgDir, { recursive: true, force: true });
      }
    }

    options.progress('measuring the raw WebSocket round-trip rate');
    const rawRate = await rawWebSocketRate(options.pilots, Math.min(options.durationSec, 10));
    const summary = (run: StoreRun) => {
      const rates = run.rounds.map((r) => r.matches / r.elapsedSec);
      const p99s = run.rounds.map((r) => percentile(r.latenciesMs, 99));
      return {
        rates,
        p99s,
        rate: median(rates),
        cpuPerMatchUs: run.rounds.map((r) => (r.matcherCpuSec / r.matches) * 1e6),
        cpuShare: run.rounds.map((r) => r.matcherCpuSec / r.elapsedSec),
        latencies: run.rounds.flatMap((r) => r.latenciesMs),
        probes: run.rounds.flatMap((r) => r.probeLatenciesMs),
      };
    };
    const list = (values: number[], digits: number) => values.map((v) => fmt(v, digits)).join(', ');
    const s = summary(sqlite);
    const lines = [
      `Population: ${options.jobs.toLocaleString('en')} waiting jobs in ${population.taskQueues} task queues, 60 sites, 69 platform/OS combinations, 11 job types, one owner holding ~80% (built into SQLite in ${fmt(population.seconds)} s).`,
      `Load: ${options.pilots} simulated pilots over real WebSockets (one process), each offering 8 cores / 16 GB / 48 h with ~35% of the OS tags and re-offering as soon as it is matched; matcher = \`dist/cli.mjs server\` in its own process on the embedded SQLite store. A ${WARM_UP_SEC} s warm-up, then ${options.rounds} rounds of ${options.durationSec} s; figures are the median round (each round in brackets).`,
      '',
      '| figure | value |',
      '|---|---|',
      `| matches/s | **${fmt(s.rate, 0)}** (${list(s.rates, 0)}) |`,
      `| matcher CPU per match (all its threads; machine load changes it least) | ${fmt(median(s.cpuPerMatchUs), 0)} µs (${list(s.cpuPerMatchUs, 0)}) |`,
      `| matcher CPU use during the rounds | ${fmt(median(s.cpuShare), 2)} cores (${list(s.cpuShare, 2)}) |`,
      `| offer → match latency p50 | ${fmt(median(s.latencies), 2)} ms |`,
      `| offer → match latency p99 | **${fmt(median(s.p99s), 2)} ms** (${list(s.p99s, 2)}) |`,
      `| submit → match for a parked pilot (REST POST to pushed frame, under load) p50 / p99 (n=${s.probes.length}) | ${fmt(median(s.probes), 2)} ms / ${fmt(percentile(s.probes, 99), 2)} ms |`,
      `| the same with no load (before the rounds) p50 / p99 (n=${sqlite.idleProbeLatenciesMs.length}) | ${fmt(median(sqlite.idleProbeLatenciesMs), 2)} ms / ${fmt(percentile(sqlite.idleProbeLatenciesMs, 99), 2)} ms |`,
      `| raw WebSocket round trips/s, same clients, echo server (same run) | ${fmt(rawRate, 0)} |`,
      `| matches/s ÷ raw round trips/s | ${fmt(s.rate / rawRate, 2)} |`,
      `| matcher RSS after start / peak / end | ${fmt(sqlite.rssAfterStart, 0)} / ${fmt(sqlite.peakRss, 0)} / ${fmt(sqlite.rssEnd, 0)} MB |`,
      `| pilots that ran out of fitting work (parked) | ${sqlite.parked} |`,
    ];
    if (runs.length > 1) {
      lines.push(
        '',
        `The same load on PostgreSQL (${pgPopulation ? `built in ${fmt(pgPopulation.seconds)} s; ` : ''}the local server, both PostgreSQL runs on one population; pilots spread over the replicas, the probe pilot on the last replica with its jobs submitted through the first), measured side by side in this run:`,
        '',
        '| store | matches/s | offer → match p99 | matcher CPU per match (all replicas) | submit → push p50 / p99, under load | the same, no load | matcher RSS peak |',
        '|---|---|---|---|---|---|---|',
        ...runs.map((run) => {
          const r = summary(run);
          return `| ${run.label} | **${fmt(r.rate, 0)}** (${list(r.rates, 0)}) | ${fmt(median(r.p99s), 2)} ms | ${fmt(median(r.cpuPerMatchUs), 0)} µs | ${fmt(median(r.probes), 2)} / ${fmt(percentile(r.probes, 99), 2)} ms | ${fmt(median(run.idleProbeLatenciesMs), 2)} / ${fmt(percentile(run.idleProbeLatenciesMs, 99), 2)} ms | ${fmt(run.peakRss, 0)} MB |`;
        }),
      );
    }
    return { markdown: lines.join('\n') };
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}
