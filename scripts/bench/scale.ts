/**
 * Scale benchmark: the matching load of the matching scenario (simulated pilots over WebSockets
 * against `dist/cli.mjs server` on SQLite) on three populations, one after another in one run, so
 * that their rates compare: the production-shaped ~500 task queues holding 10,000 and then
 * 1,000,000 waiting jobs (does matching slow down with the number of jobs?), and 50,000 task queues
 * of 4 jobs each, GPU-heavy, with many tags and sites (does it slow down with the number of TQs?).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { populate, runLoad, type StoreRun } from './matching.ts';
import { buildManyTaskQueues, type PopulationTaskQueue } from './population.ts';
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
  const rows: { label: string; taskQueues: number; run: StoreRun }[] = [];
  // PH_SCALE_ONLY=tqs runs only the many-TQ population (when working on it; the table then lacks the base).
  const only = process.env.PH_SCALE_ONLY === 'tqs' ? cases.slice(2) : cases;
  for (const entry of only) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-scale-'));
    try {
      options.progress(`${entry.label}: populating`);
      const built = await populate(path.join(dir, 'pilothouse.sqlite'), entry.population, options.progress);
      options.progress(`${entry.label}: ${built.taskQueues} task queues built in ${fmt(built.seconds)} s; loading`);
      const run = await runLoad(entry.label, dir, undefined, 1, {
        jobs: typeof entry.population === 'number' ? entry.population : 0,
        pilots: options.pilots,
        durationSec: options.durationSec,
        rounds: options.rounds,
        probes: 30,
        progress: options.progress,
      });
      rows.push({ label: entry.label, taskQueues: built.taskQueues, run });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const rateOf = (run: StoreRun) => median(run.rounds.map((r) => r.matches / r.elapsedSec));
  const base = rateOf((rows[0] as { run: StoreRun }).run);
  return [
    `${options.pilots} simulated pilots offering 8 cores / 16 GB / 48 h with ~35% of the OS tags (no GPU), as in the matching scenario; a 3 s warm-up, then ${options.rounds} rounds of ${options.durationSec} s per population, medians; the populations run one after another in this run.`,
    '',
    '| population | task queues | matches/s | vs 10,000 jobs | offer → match p99 | matcher CPU per match | submit → match p50 (no load) | pilots left without work |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(({ label, taskQueues, run }) => {
      const rate = rateOf(run);
      const p99 = median(run.rounds.map((r) => percentile(r.latenciesMs, 99)));
      const cpu = median(run.rounds.map((r) => (r.matcherCpuSec / Math.max(r.matches, 1)) * 1e6));
      return `| ${label} | ${taskQueues.toLocaleString('en')} | **${fmt(rate, 0)}** | ${fmt(rate / base, 2)} | ${fmt(p99, 2)} ms | ${fmt(cpu, 0)} µs | ${fmt(median(run.idleProbeLatenciesMs), 2)} ms | ${run.parked} |`;
    }),
  ].join('\n');
}
