/**
 * Scale benchmark: the matching load of the matching scenario (simulated pilots over WebSockets
 * against `dist/cli.mjs server` on SQLite) on three populations, side by side in one run, so that
 * their rates compare: the production-shaped ~500 task queues holding 10,000 and then 1,000,000
 * waiting jobs (does matching slow down with the number of jobs?), and 50,000 task queues of 4 jobs
 * each, GPU-heavy, with many tags and sites (does it slow down with the number of TQs?).
 *
 * Each population is built once. Each round then starts a matcher on a fresh copy of every
 * population's file, all at once, and gives each the same work: a warm-up of WARM_UP_MATCHES, then
 * TIMED_MATCHES timed matches taken in CHUNKS slices that alternate between the matchers (the others
 * wait idle meanwhile). So every round measures the same starting state, the populations are timed
 * within a fraction of a second of each other all along (a noisy machine slows them alike), and the
 * ratios to the 10,000 jobs are taken within a round and their median quoted. The work takes at
 * most 35 % of the 10,000 jobs, so that every pilot still has work at the end ("pilots left without
 * work" shows it).
 */
import { copyFile, mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { cpuSec, pilotResources, populate, startServer, token } from './matching.ts';
import { buildManyTaskQueues, seededRandom, SITES, type PopulationTaskQueue } from './population.ts';
import { SimPilot } from './sim-pilot.ts';
import { DEFAULT_SQLITE_FILE } from '../../matcher/store/location.ts';
import type { OfferResources } from '../../shared/protocol/messages.ts';
import { fmt, median, percentile } from './stats.ts';

export interface ScaleBenchOptions {
  pilots: number;
  durationSec: number;
  rounds: number;
  progress(message: string): void;
}

interface Case {
  label: string;
  population: number | readonly PopulationTaskQueue[];
}

const DB_FILE = DEFAULT_SQLITE_FILE;

export async function benchScale(options: ScaleBenchOptions): Promise<string> {
  const cases: Case[] = [
    { label: '10,000 waiting jobs, production shape', population: 10_000 },
    { label: '1,000,000 waiting jobs, production shape', population: 1_000_000 },
    { label: '50,000 task queues × 4 jobs, 40% GPU, many tags and sites', population: buildManyTaskQueues(50_000, 4) },
  ];
  const root = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-scale-'));
  try {
    const built: { entry: Case; file: string; taskQueues: number; runs: RoundRun[] }[] = [];
    for (const [index, entry] of cases.entries()) {
      const file = path.join(root, `population-${index}.sqlite`);
      options.progress(`${entry.label}: populating`);
      const { taskQueues, seconds } = await populate(file, entry.population, options.progress);
      options.progress(`${entry.label}: ${taskQueues} task queues built in ${fmt(seconds)} s`);
      built.push({ entry, file, taskQueues, runs: [] });
    }
    for (let round = 1; round <= options.rounds; round += 1) {
      const runs = await oneRound(
        root,
        round,
        built.map(({ file }) => file),
        options,
      );
      runs.forEach((run, index) => {
        const population = built[index] as (typeof built)[number];
        population.runs.push(run);
        options.progress(
          `round ${round}, ${population.entry.label}: ${fmt(run.rate, 0)} matches/s, ${fmt(run.cpuUsPerMatch, 0)} µs CPU per match`,
        );
      });
    }
    const base = built[0] as (typeof built)[number];
    const ratios = (population: (typeof built)[number], pick: (run: RoundRun) => number): number[] =>
      population.runs.map((run, i) => pick(run) / pick(base.runs[i] as RoundRun));
    const lines = built.map(({ entry, taskQueues, runs }, index) => {
      const rateRatios = ratios(built[index] as (typeof built)[number], (run) => run.rate);
      const cpuRatios = ratios(built[index] as (typeof built)[number], (run) => run.cpuUsPerMatch);
      const perRound = index === 0 ? '' : ` (${rateRatios.map((r) => fmt(r, 2)).join(', ')})`;
      return `| ${entry.label} | ${taskQueues.toLocaleString('en')} | **${fmt(median(runs.map((r) => r.rate)), 0)}** | ${fmt(median(rateRatios), 2)}${perRound} | ${fmt(median(runs.map((r) => r.p99Ms)), 2)} ms | ${fmt(median(runs.map((r) => r.cpuUsPerMatch)), 0)} µs | ${fmt(median(cpuRatios), 2)} | ${Math.max(...runs.map((r) => r.parked))} |`;
    });
    return [
      `${options.pilots} simulated pilots offering 8 cores / 16 GB / 48 h with ~35% of the OS tags (no GPU), as in the matching scenario, on \`dist/cli.mjs server\` (SQLite). Each population is built once; each of ${options.rounds} rounds starts a matcher on a fresh copy of every population at once; after ${WARM_UP_MATCHES} matches of warm-up each, ${TIMED_MATCHES} matches of each are timed in ${CHUNKS} slices that alternate between the matchers (the order rotating), so that the populations share the machine's noise. Medians of the rounds; the ratios to the 10,000 jobs are taken within each round (per round in brackets).`,
      '',
      '| population | task queues | matches/s | vs 10,000 jobs | offer → match p99 | matcher CPU per match | CPU per match vs 10,000 jobs | pilots left without work |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...lines,
    ].join('\n');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** A copy of a population file, on disk before the matcher starts (else its write-back would be measured). */
async function copySynced(from: string, to: string): Promise<void> {
  await rm(path.dirname(to), { recursive: true, force: true });
  await mkdir(path.dirname(to), { recursive: true });
  await copyFile(from, to);
  const file = await open(to, 'r');
  await file.sync();
  await file.close();
}

const WARM_UP_MATCHES = 1500;
/** Timed matches per population and round, taken in CHUNKS slices that alternate between the populations. */
const TIMED_MATCHES = 2000;
const CHUNKS = 8;

interface RoundRun {
  rate: number;
  p99Ms: number;
  cpuUsPerMatch: number;
  parked: number;
}

interface PilotEntry {
  pilot: SimPilot;
  resources: OfferResources;
  parked: boolean;
}

/** One population's matcher in a round, and what its timed slices added up to. */
interface RunningMatcher {
  child: ChildProcess;
  pilots: PilotEntry[];
  matches: number;
  seconds: number;
  cpuSec: number;
  latenciesMs: number[];
}

/**
 * One round: a matcher on a fresh copy of each population, all started before any is timed. Each takes
 * its warm-up, then the timed matches are taken in CHUNKS slices, one matcher at a time, the order
 * rotating from slice to slice: the populations share the machine's noise, slice by slice, instead of
 * being timed seconds apart.
 */
async function oneRound(
  root: string,
  round: number,
  files: readonly string[],
  options: ScaleBenchOptions,
): Promise<RoundRun[]> {
  const matchers: RunningMatcher[] = [];
  const dataDirs = files.map((_, index) => path.join(root, `round-${round}-${index}`));
  try {
    for (const [index, file] of files.entries()) {
      const dataDir = dataDirs[index] as string;
      await copySynced(file, path.join(dataDir, DB_FILE));
      const { child, url } = await startServer(dataDir, undefined, [
        '--max-connections-per-token',
        String(options.pilots + 10),
      ]);
      const matcher: RunningMatcher = { child, pilots: [], matches: 0, seconds: 0, cpuSec: 0, latenciesMs: [] };
      matchers.push(matcher);
      matcher.pilots = await connectPilots(url, dataDir, options.pilots);
    }
    for (const matcher of matchers) await takeMatches(matcher.pilots, WARM_UP_MATCHES);
    for (let chunk = 0; chunk < CHUNKS; chunk += 1) {
      for (let turn = 0; turn < matchers.length; turn += 1) {
        const matcher = matchers[(chunk + turn) % matchers.length] as RunningMatcher;
        const pid = matcher.child.pid as number;
        const cpuAtStart = await cpuSec(pid);
        const slice = await takeMatches(matcher.pilots, TIMED_MATCHES / CHUNKS);
        matcher.cpuSec += (await cpuSec(pid)) - cpuAtStart;
        matcher.matches += slice.matches;
        matcher.seconds += slice.seconds;
        matcher.latenciesMs.push(...slice.latenciesMs);
      }
    }
    return matchers.map((matcher) => ({
      rate: matcher.matches / matcher.seconds,
      p99Ms: percentile(matcher.latenciesMs, 99),
      cpuUsPerMatch: (matcher.cpuSec * 1e6) / Math.max(1, matcher.matches),
      parked: matcher.pilots.filter((p) => p.parked).length,
    }));
  } finally {
    for (const matcher of matchers) {
      for (const { pilot } of matcher.pilots) pilot.ws.close();
      matcher.child.kill('SIGTERM');
      await once(matcher.child, 'exit');
    }
    for (const dataDir of dataDirs) await rm(dataDir, { recursive: true, force: true });
  }
}

async function connectPilots(url: string, dataDir: string, count: number): Promise<PilotEntry[]> {
  const pilotToken = await token(dataDir, ['--kind', 'pilot', '--vo', 'lhcb']);
  // The same seed in every matcher: each population is offered the same pilots.
  const random = seededRandom(7);
  const pilots: PilotEntry[] = [];
  for (let i = 0; i < count; i += 1) {
    const pilot = new SimPilot(url, pilotToken);
    await pilot.hello(`scale-${i}`, SITES[Math.floor(random() * SITES.length)] as string);
    pilots.push({ pilot, resources: pilotResources(random), parked: false });
  }
  return pilots;
}

/** The pilots offer until `target` matches are taken (or nothing fits them any more). */
async function takeMatches(
  pilots: PilotEntry[],
  target: number,
): Promise<{ matches: number; latenciesMs: number[]; seconds: number }> {
  let matches = 0;
  const latenciesMs: number[] = [];
  const started = performance.now();
  await Promise.all(
    pilots.map(async (entry) => {
      while (!entry.parked && matches < target) {
        const t0 = performance.now();
        const answer = await entry.pilot.offer(entry.resources);
        if (answer.type !== 'match') {
          entry.parked = true;
          return;
        }
        latenciesMs.push(performance.now() - t0);
        matches += 1;
      }
    }),
  );
  return { matches, latenciesMs, seconds: (performance.now() - started) / 1000 };
}
