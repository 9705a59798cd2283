/**
 * Scale benchmark: the matching load of the matching scenario (simulated pilots over WebSockets
 * against `dist/cli.mjs server` on SQLite) on three populations, one after another in one run, so
 * that their rates compare: the production-shaped ~500 task queues holding 10,000 and then
 * 1,000,000 waiting jobs (does matching slow down with the number of jobs?), and 50,000 task queues
 * of 4 jobs each, GPU-heavy, with many tags and sites (does it slow down with the number of TQs?).
 *
 * Each population gets the same work: a warm-up of WARM_UP_MATCHES, then ROUNDS rounds of
 * MATCHES_PER_ROUND matches, timed (a duration would not do: 10,000 jobs last two seconds). The work
 * takes at most 35 % of the 10,000 jobs, so that every pilot still has work at the end: a budget that
 * drained the small population (8,500 of its 10,000 jobs) left most pilots parked and measured a
 * nearly empty queue, not 10,000 waiting jobs. "Pilots left without work" shows it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { cpuSec, pilotResources, populate, startServer, token } from './matching.ts';
import { buildManyTaskQueues, seededRandom, SITES, type PopulationTaskQueue } from './population.ts';
import { SimPilot } from './sim-pilot.ts';
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

export async function benchScale(options: ScaleBenchOptions): Promise<string> {
  const cases: Case[] = [
    { label: '10,000 waiting jobs, production shape', population: 10_000 },
    { label: '1,000,000 waiting jobs, production shape', population: 1_000_000 },
    { label: '50,000 task queues × 4 jobs, 40% GPU, many tags and sites', population: buildManyTaskQueues(50_000, 4) },
  ];
  const rows: { label: string; taskQueues: number; run: BudgetRun }[] = [];
  // PH_SCALE_ONLY=million|tqs runs one population (when profiling it; the table then lacks the base).
  const onlyIndex = { million: 1, tqs: 2 }[process.env.PH_SCALE_ONLY ?? ''];
  const only = onlyIndex === undefined ? cases : cases.slice(onlyIndex, onlyIndex + 1);
  for (const entry of only) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-scale-'));
    try {
      options.progress(`${entry.label}: populating`);
      const built = await populate(path.join(dir, 'pilothouse.sqlite'), entry.population, options.progress);
      options.progress(`${entry.label}: ${built.taskQueues} task queues built in ${fmt(built.seconds)} s; matching`);
      rows.push({ label: entry.label, taskQueues: built.taskQueues, run: await budgetRun(dir, options) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const base = (rows[0] as { run: BudgetRun }).run.rate;
  const baseCpu = (rows[0] as { run: BudgetRun }).run.cpuUsPerMatch;
  return [
    `${options.pilots} simulated pilots offering 8 cores / 16 GB / 48 h with ~35% of the OS tags (no GPU), as in the matching scenario, on \`dist/cli.mjs server\` (SQLite); per population ${WARM_UP_MATCHES} matches of warm-up, then ${options.rounds} timed rounds of ${MATCHES_PER_ROUND} matches (medians); the populations run one after another in this run.`,
    '',
    '| population | task queues | matches/s | vs 10,000 jobs | offer → match p99 | matcher CPU per match | CPU per match vs 10,000 jobs | pilots left without work |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      ({ label, taskQueues, run }) =>
        `| ${label} | ${taskQueues.toLocaleString('en')} | **${fmt(run.rate, 0)}** | ${fmt(run.rate / base, 2)} | ${fmt(run.p99Ms, 2)} ms | ${fmt(run.cpuUsPerMatch, 0)} µs | ${fmt(run.cpuUsPerMatch / baseCpu, 2)} | ${run.parked} |`,
    ),
  ].join('\n');
}

const WARM_UP_MATCHES = 500;
const MATCHES_PER_ROUND = 1000;

interface BudgetRun {
  rate: number;
  p99Ms: number;
  cpuUsPerMatch: number;
  parked: number;
}

/** Pilots take matches until the round's count is reached (or nothing fits them any more). */
async function budgetRun(dataDir: string, options: ScaleBenchOptions): Promise<BudgetRun> {
  const { child, url } = await startServer(dataDir, undefined, [
    '--max-connections-per-token',
    String(options.pilots + 10),
  ]);
  const pid = child.pid as number;
  try {
    const pilotToken = await token(dataDir, ['--kind', 'pilot', '--vo', 'lhcb']);
    const random = seededRandom(7);
    const pilots: { pilot: SimPilot; resources: OfferResources; parked: boolean }[] = [];
    for (let i = 0; i < options.pilots; i += 1) {
      const pilot = new SimPilot(url, pilotToken);
      await pilot.hello(`scale-${i}`, SITES[Math.floor(random() * SITES.length)] as string);
      pilots.push({ pilot, resources: pilotResources(random), parked: false });
    }
    const round = async (target: number) => {
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
    };
    await round(WARM_UP_MATCHES);
    const rates: number[] = [];
    const p99s: number[] = [];
    const cpus: number[] = [];
    for (let i = 1; i <= options.rounds; i += 1) {
      const cpuAtStart = await cpuSec(pid);
      const figures = await round(MATCHES_PER_ROUND);
      const cpu = (await cpuSec(pid)) - cpuAtStart;
      options.progress(`round ${i}: ${figures.matches} matches in ${fmt(figures.seconds, 2)} s`);
      rates.push(figures.matches / figures.seconds);
      p99s.push(percentile(figures.latenciesMs, 99));
      cpus.push((cpu * 1e6) / Math.max(1, figures.matches));
    }
    for (const { pilot } of pilots) pilot.ws.close();
    return {
      rate: median(rates),
      p99Ms: median(p99s),
      cpuUsPerMatch: median(cpus),
      parked: pilots.filter((p) => p.parked).length,
    };
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}
