/**
 * Dispatch benchmark: a job's whole life in the matcher, side by side with BullMQ on the machine's
 * Redis, in the same run.
 *
 * Pilothouse, per round: a fresh matcher process (`dist/cli.mjs server`, SQLite); N trivial jobs
 * submitted in one bulk REST request; then W simulated pilots over real WebSockets, each doing
 * offer → match → report Running and Done → offer, until every job is Done (every Done report
 * acked, i.e. stored). Running and Done leave in one frame, as a real pilot sends the reports of a
 * job that ends within its report coalescing window (`--report-coalesce-ms`); each is still its
 * own history row and state-machine step. Then, with W pilots parked, one job at a time is submitted and the time until
 * a pilot holds its match is taken (an idle pilot's submit → match latency).
 *
 * BullMQ, per round: a fresh queue; the same N jobs added with addBulk; then W workers (one Redis
 * connection and concurrency 1 each, like W pilots) doing take → process (nothing) → complete until
 * every job is completed; then, with the W workers idle, one job at a time added and the time until
 * the processor starts it.
 *
 * BullMQ does no matching and keeps no status history; Pilothouse keeps both, and its fencing.
 *
 * Both sides' CPU per job during the drain is read from /proc: the matcher process and Redis's (when
 * Redis runs on this machine), each with its clients (the simulated pilots, BullMQ's workers: this
 * process). Rates move with whatever else the machine does; CPU per job moves much less, so it says
 * where the gap is even on a busy machine.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { JobSubmitter, submitToMatchLatencies } from './job-submitter.ts';
import { cpuSec, startServer, token } from './matching.ts';
import { SimPilot } from './sim-pilot.ts';
import { fmt, median, percentile } from './stats.ts';
import type { OfferResources } from '../../shared/protocol/messages.ts';

export interface DispatchBenchOptions {
  jobs: number;
  /**
   * Each shape is measured in turn: `pilots` simulated pilots (and as many BullMQ workers), each
   * running `slots` jobs at once (it offers that many cores; a worker's concurrency).
   */
  shapes: readonly DispatchShape[];
  rounds: number;
  /** Submit → match samples per round (one job at a time). */
  latencySamples: number;
  redisUrl: string;
  progress(message: string): void;
}

export interface DispatchShape {
  pilots: number;
  slots: number;
}

/** One shape's run: the options with the shape's pilots and slots. */
type ShapeRun = Omit<DispatchBenchOptions, 'shapes'> & DispatchShape;

interface RoundFigures {
  submitJobsPerSec: number;
  drainJobsPerSec: number;
  /** Submission and drain together: N / (submit time + drain time). */
  wholeJobsPerSec: number;
  latencyMs: number[];
  /**
   * CPU time per job during the drain of the server side: the matcher process, or Redis (NaN when
   * Redis is not a process of this machine that /proc shows).
   */
  drainCpuUsPerJob: number;
  /** Its CPU time over the drain's wall time: 1.0 = one core busy all along. */
  drainBusy: number;
  /** The benchmark process's own CPU over the drain's wall time (simulated pilots, or BullMQ's workers). */
  clientBusy: number;
  /** The same per job, µs. */
  clientCpuUsPerJob: number;
}

/** What a pilot of `slots` one-core job slots offers (2 GB a core). */
const resourcesOf = (slots: number): OfferResources => ({
  cores: slots,
  memoryMB: 2000 * slots,
  wallTimeSec: 86_400,
  tags: [],
});
const TRIVIAL_JOB = { executable: '/bin/true' };

/**
 * One pilot's life until nothing is left for it: take as many jobs as it has free slots (one offer),
 * run them (nothing), report, ask again. A job shorter than the pilot's report coalescing window:
 * Running and Done leave in one frame, and the reports of the jobs that ended together share that
 * frame, as a real pilot sends them. Not awaited: a real pilot sends and goes on, the ack comes later.
 */
async function drainWith(pilot: SimPilot, slots: number, counted: { done: number }): Promise<void> {
  const acks: Promise<void>[] = [];
  for (;;) {
    const answer = slots === 1 ? await pilot.offer(resourcesOf(1)) : await pilot.offerMany(resourcesOf(slots), slots);
    const matches = Array.isArray(answer) ? answer : answer.type === 'match' ? [answer] : [];
    if (matches.length === 0) break; // parked: the queue is empty for it
    const startedAt = new Date().toISOString();
    const reports = matches.map(({ job: { jobId, attempt } }) => ({
      jobId,
      attempt,
      status: 'Done' as const,
      minorStatus: 'Execution Complete',
      exitCode: 0,
      earlier: [{ at: startedAt, status: 'Running' as const, minorStatus: 'Application' }],
    }));
    const [only] = reports;
    const acked =
      reports.length === 1 && only !== undefined
        ? pilot.report(only.jobId, only.attempt, only)
        : pilot.reportMany(reports);
    acks.push(acked.then(() => void (counted.done += reports.length)));
  }
  await Promise.all(acks);
}

async function pilothouseRound(options: ShapeRun, round: number): Promise<RoundFigures> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-dispatch-'));
  const dataDir = path.join(dir, 'data');
  const { child, url } = await startServer(dataDir);
  const label = `pilothouse round ${round}`;
  try {
    const adminToken = (await readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();

    const submitter = new JobSubmitter(url, adminToken);
    const pilots: SimPilot[] = [];
    // One token per pilot, bound to its stamp, as a site director gives them out.
    const stamps = Array.from({ length: options.pilots }, (_, i) => `dispatch-${i}`);
    const tokens = await Promise.all(
      stamps.map((stamp) => token(dataDir, ['--kind', 'pilot', '--vo', 'local', '--stamp', stamp])),
    );
    for (const [i, stamp] of stamps.entries()) {
      const pilot = new SimPilot(url, tokens[i] as string);
      await pilot.hello(stamp, 'LCG.Bench.org');
      pilots.push(pilot);
    }

    options.progress(`${label}: submitting ${options.jobs} jobs`);
    const body = Array.from({ length: options.jobs }, () => TRIVIAL_JOB);
    const submitStarted = performance.now();
    await submitter.submit(body);
    const submitMs = performance.now() - submitStarted;

    options.progress(`${label}: ${options.pilots} pilots draining`);
    const counted = { done: 0 };
    const ticker = setInterval(() => options.progress(`${label}: ${counted.done}/${options.jobs} Done`), 1000);
    const drainStarted = performance.now();
    const cpuAtStart = await cpuSec(child.pid as number);
    const ownCpuAtStart = process.cpuUsage();
    await Promise.all(pilots.map((pilot) => drainWith(pilot, options.slots, counted)));
    const drainMs = performance.now() - drainStarted;
    const drainCpuSec = (await cpuSec(child.pid as number)) - cpuAtStart;
    const clients = clientFigures(process.cpuUsage(ownCpuAtStart), drainMs, options.jobs);
    clearInterval(ticker);
    if (counted.done !== options.jobs) throw new Error(`${label}: ${counted.done} Done of ${options.jobs}`);

    // Every pilot is parked now: one job at a time goes to one of them.
    const latencyMs = await submitToMatchLatencies(
      submitter,
      pilots,
      resourcesOf(options.slots),
      options.latencySamples,
    );
    for (const pilot of pilots) pilot.ws.close();
    await submitter.close();
    return {
      submitJobsPerSec: options.jobs / (submitMs / 1000),
      drainJobsPerSec: options.jobs / (drainMs / 1000),
      wholeJobsPerSec: options.jobs / ((submitMs + drainMs) / 1000),
      latencyMs,
      drainCpuUsPerJob: (drainCpuSec * 1e6) / options.jobs,
      drainBusy: drainCpuSec / (drainMs / 1000),
      ...clients,
    };
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
    await rm(dir, { recursive: true, force: true });
  }
}

/** A client of its own (BullMQ 6 takes a built ioredis client under ESM); workers need null retries. */
const redisConnection = (redisUrl: string): Redis => new Redis(redisUrl, { maxRetriesPerRequest: null });

async function bullmqRound(options: ShapeRun, round: number): Promise<RoundFigures> {
  const name = `ph-bench-dispatch-${process.pid}-${round}`;
  const label = `bullmq round ${round}`;
  const connections: Redis[] = [redisConnection(options.redisUrl)];
  const queue = new Queue(name, { connection: connections[0] as Redis });
  await queue.obliterate({ force: true });
  const workers: Worker[] = [];
  try {
    options.progress(`${label}: adding ${options.jobs} jobs`);
    const submitStarted = performance.now();
    await queue.addBulk(Array.from({ length: options.jobs }, () => ({ name: 'job', data: TRIVIAL_JOB })));
    const submitMs = performance.now() - submitStarted;

    options.progress(`${label}: ${options.pilots} workers draining`);
    let completed = 0;
    let started: ((at: number) => void) | null = null;
    const allDone = new Promise<void>((resolve) => {
      for (let i = 0; i < options.pilots; i += 1) {
        const worker = new Worker(
          name,
          async () => {
            started?.(performance.now());
            started = null;
          },
          {
            connection: connections[connections.push(redisConnection(options.redisUrl)) - 1] as Redis,
            concurrency: options.slots,
            autorun: false,
          },
        );
        worker.on('completed', () => {
          completed += 1;
          if (completed === options.jobs) resolve();
        });
        workers.push(worker);
      }
    });
    const redisPid = await localRedisPid(connections[0] as Redis, options.redisUrl);
    const drainStarted = performance.now();
    const redisCpuAtStart = redisPid === null ? NaN : await cpuSec(redisPid);
    const ownCpuAtStart = process.cpuUsage();
    for (const worker of workers) void worker.run();
    await allDone;
    const drainMs = performance.now() - drainStarted;
    const clients = clientFigures(process.cpuUsage(ownCpuAtStart), drainMs, options.jobs);
    const redisCpuSec = redisPid === null ? NaN : (await cpuSec(redisPid)) - redisCpuAtStart;

    const latencyMs: number[] = [];
    for (let i = 0; i < options.latencySamples; i += 1) {
      const begun = new Promise<number>((resolve) => (started = resolve));
      const at = performance.now();
      await queue.add('job', TRIVIAL_JOB);
      latencyMs.push((await begun) - at);
    }
    return {
      submitJobsPerSec: options.jobs / (submitMs / 1000),
      drainJobsPerSec: options.jobs / (drainMs / 1000),
      wholeJobsPerSec: options.jobs / ((submitMs + drainMs) / 1000),
      latencyMs,
      drainCpuUsPerJob: (redisCpuSec * 1e6) / options.jobs,
      drainBusy: redisCpuSec / (drainMs / 1000),
      ...clients,
    };
  } finally {
    await Promise.all(workers.map((worker) => worker.close()));
    await queue.obliterate({ force: true });
    await queue.close();
    for (const connection of connections) connection.disconnect();
  }
}

/** The benchmark process's CPU during a drain (its clients: simulated pilots, or BullMQ's workers). */
function clientFigures(
  ownCpu: NodeJS.CpuUsage,
  drainMs: number,
  jobs: number,
): Pick<RoundFigures, 'clientBusy' | 'clientCpuUsPerJob'> {
  const cpuUs = ownCpu.user + ownCpu.system;
  return { clientBusy: cpuUs / 1000 / drainMs, clientCpuUsPerJob: cpuUs / jobs };
}

/**
 * The pid of the Redis server when it runs on this machine and /proc shows it (its CPU is then read
 * like the matcher's); null for a Redis elsewhere, whose CPU this benchmark cannot see.
 */
async function localRedisPid(client: Redis, redisUrl: string): Promise<number | null> {
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(new URL(redisUrl).hostname)) return null;
  const pid = Number(/^process_id:(\d+)/m.exec(await client.info('server'))?.[1]);
  if (!Number.isInteger(pid)) return null;
  try {
    const command = await readFile(`/proc/${pid}/comm`, 'utf8');
    return command.startsWith('redis') ? pid : null;
  } catch {
    return null;
  }
}

/** Checks that Redis answers before a run starts, so that a missing Redis is said plainly. */
async function redisReachable(redisUrl: string): Promise<void> {
  const client = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    throw new Error(`Redis at ${redisUrl} does not answer (${(error as Error).message}): BullMQ runs on it`);
  } finally {
    client.disconnect();
  }
}

export async function benchDispatch(options: DispatchBenchOptions): Promise<string> {
  await redisReachable(options.redisUrl);
  const { shapes, ...common } = options;
  const runs = shapes.map((shape) => ({
    run: { ...common, ...shape },
    ours: [] as RoundFigures[],
    theirs: [] as RoundFigures[],
  }));
  for (let round = 1; round <= options.rounds; round += 1) {
    // Every shape in every round, each side after the other: a slow moment of the machine hits both
    // sides and all shapes alike, and the shapes compare round by round.
    for (const { run, ours, theirs } of runs) {
      ours.push(await pilothouseRound(run, round));
      theirs.push(await bullmqRound(run, round));
      const ratio = (ours.at(-1)?.wholeJobsPerSec ?? 0) / (theirs.at(-1)?.wholeJobsPerSec ?? 1);
      options.progress(
        `round ${round}, ${run.pilots}x${run.slots}: whole job life ratio Pilothouse/BullMQ ${fmt(ratio, 2)}; matcher ${fmt(ours.at(-1)?.drainCpuUsPerJob ?? NaN, 0)} µs CPU/job, ${fmt(100 * (ours.at(-1)?.drainBusy ?? NaN), 0)} % busy; load generator ${fmt(100 * (ours.at(-1)?.clientBusy ?? NaN), 0)} % (Redis ${fmt(theirs.at(-1)?.drainCpuUsPerJob ?? NaN, 0)} µs CPU/job; BullMQ's workers ${fmt(100 * (theirs.at(-1)?.clientBusy ?? NaN), 0)} %)`,
      );
    }
  }
  const sections = runs.map(({ run, ours, theirs }) => {
    const heading = `### ${run.pilots} pilot(s) × ${run.slots} job slot(s) — BullMQ: ${run.pilots} worker(s) of concurrency ${run.slots}`;
    return `${heading}\n\n${shapeTable(ours, theirs)}`;
  });
  const cpuPerRound = runs.map(
    ({ run, ours, theirs }) =>
      `${run.pilots}×${run.slots}: ${ours.map((r) => fmt(r.drainCpuUsPerJob, 0)).join(', ')} (Redis ${theirs.map((r) => fmt(r.drainCpuUsPerJob, 0)).join(', ')})`,
  );
  return [
    `${options.jobs} trivial jobs per round; ${options.rounds} rounds, each running every shape in turn (a fresh matcher and a fresh queue each, Pilothouse then BullMQ); medians of the rounds. BullMQ ${bullmqVersion()} on Redis at ${options.redisUrl}. The shapes keep the same number of jobs in flight.`,
    '',
    ...sections,
    `The matcher's CPU per job during the drain, round by round (µs): ${cpuPerRound.join('; ')}.`,
    '',
    "CPU per job is read from /proc for the matcher process and for Redis's (a Redis elsewhere shows n/a), and from the benchmark process for the clients of each side (simulated pilots; BullMQ's workers). Unlike the rates, it moves little with the machine's other load. In those two rows the ratio says how many times as much CPU per job Pilothouse spends as BullMQ (above 1: more).",
    '',
    'Pilothouse keeps for each job what BullMQ does not: the match against the pilot (task queues, shares, limits), a fenced attempt, a status history row per report, and an ack after each report is stored. Each simulated pilot sends Running and Done in one frame, as the pilot does for a job that ends within its report coalescing window (`--report-coalesce-ms`, 500 ms by default); the matcher still applies them as two state-machine steps with a history row each, in one write. A pilot of several slots takes its jobs with one offer (`maxJobs`) and reports the jobs that ended together in one `job.statuses` frame, as the pilot does on a multi-core node.',
  ].join('\n');
}

function shapeTable(ours: RoundFigures[], theirs: RoundFigures[]): string {
  const med = (rounds: RoundFigures[], pick: (r: RoundFigures) => number): number => median(rounds.map(pick));
  const ratios = ours.map((r, i) => r.wholeJobsPerSec / (theirs[i] as RoundFigures).wholeJobsPerSec);
  const drainRatios = ours.map((r, i) => r.drainJobsPerSec / (theirs[i] as RoundFigures).drainJobsPerSec);
  const row = (label: string, pick: (r: RoundFigures) => number, digits = 0, ratio = true): string => {
    const a = med(ours, pick);
    const b = med(theirs, pick);
    return `| ${label} | ${fmt(a, digits)} | ${fmt(b, digits)} | ${ratio ? fmt(a / b, 2) : ''} |`;
  };
  const latencies = (rounds: RoundFigures[]): number[] => rounds.flatMap((r) => r.latencyMs);
  return [
    '| | Pilothouse | BullMQ | ratio |',
    '| --- | ---: | ---: | ---: |',
    row('submission, jobs/s (one bulk request / addBulk)', (r) => r.submitJobsPerSec),
    row('drain, jobs/s (match or take → Running → Done / complete)', (r) => r.drainJobsPerSec),
    row('**whole job life, jobs/s** (submission + drain)', (r) => r.wholeJobsPerSec),
    row('drain CPU per job, µs: matcher / Redis', (r) => r.drainCpuUsPerJob),
    row(
      'drain CPU per job, µs, with the clients (simulated pilots / workers)',
      (r) => r.drainCpuUsPerJob + r.clientCpuUsPerJob,
    ),
    `| idle pilot/worker: submit → match/start, p50 ms | ${fmt(percentile(latencies(ours), 50), 2)} | ${fmt(percentile(latencies(theirs), 50), 2)} | |`,
    `| idle pilot/worker: submit → match/start, p99 ms | ${fmt(percentile(latencies(ours), 99), 2)} | ${fmt(percentile(latencies(theirs), 99), 2)} | |`,
    '',
    `The matcher process used ${fmt(
      med(ours, (r) => r.drainCpuUsPerJob),
      0,
    )} µs of CPU per job during the drain, ${fmt(100 * med(ours, (r) => r.drainBusy), 0)} % of one core: the drain is bound by the matcher's CPU. Redis used ${fmt(100 * med(theirs, (r) => r.drainBusy), 0)} % of a core. The benchmark process used ${fmt(100 * med(ours, (r) => r.clientBusy), 0)} % of a core for the simulated pilots, ${fmt(100 * med(theirs, (r) => r.clientBusy), 0)} % for BullMQ's workers.`,
    '',
    `Whole-life ratio per round: ${ratios.map((r) => fmt(r, 2)).join(', ')} (median **${fmt(median(ratios), 2)}**); drain ratio per round: ${drainRatios.map((r) => fmt(r, 2)).join(', ')}.`,
    '',
  ].join('\n');
}

/** The installed version, read at run time: the figures name what they ran against. */
function bullmqVersion(): string {
  return (createRequire(import.meta.url)('bullmq/package.json') as { version: string }).version;
}
