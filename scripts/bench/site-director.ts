/**
 * Site-director benchmark: one cycle over many queues against a production-shaped population.
 * The matcher (`dist/cli.mjs server`) runs in its own process on a SQLite file filled with the
 * matching benchmark's population (~500 task queues); the director runs in this process with a
 * configuration of `--queues` queues (sites × CEs × queues, cores, wall times, platforms and OS tags
 * varied) and, optionally, `--tracked` pilots registered to it on local CEs (so its monitoring lists
 * them and asks their CEs about them). Caps are 0 pilots per cycle: what is measured is the director's
 * own work and the demand route, not process start-up.
 *
 * Figures: cycle wall time and director CPU per cycle (median of the rounds), the matcher's CPU per
 * cycle, and the demand route's latency seen by the director (one request carrying every queue).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { silentLogger } from '../../shared/logger.ts';
import { parseDirectorConfig } from '../../site-director/config/load.ts';
import { buildDirector } from '../../site-director/service.ts';
import { OS_TAGS, PLATFORMS, SITES } from './population.ts';
import { cpuSec, populate, startServer } from './matching.ts';
import { fmt, median, percentile } from './stats.ts';

export interface SiteDirectorBenchOptions {
  jobs: number;
  queues: number;
  tracked: number;
  rounds: number;
  progress(message: string): void;
}

const QUEUES_PER_CE = 10;
const CES_PER_SITE = 2;

function directorYaml(queues: number, workDir: string): string {
  const lines = ['name: bench', 'cycle: { parallelCes: 8 }', 'sites:'];
  let made = 0;
  for (let s = 0; made < queues; s += 1) {
    lines.push(
      `  - name: ${SITES[s % SITES.length]}${s >= SITES.length ? `.x${Math.floor(s / SITES.length)}` : ''}`,
      '    vos: [lhcb]',
      '    ces:',
    );
    for (let c = 0; c < CES_PER_SITE && made < queues; c += 1) {
      lines.push(
        `      - name: ce${c}`,
        '        type: local',
        `        local: { workDir: ${workDir}/s${s}c${c} }`,
        '        maxPilotsPerCycle: 0',
        '        queues:',
      );
      for (let q = 0; q < QUEUES_PER_CE && made < queues; q += 1, made += 1) {
        const cores = q % 3 === 0 ? 8 : 1;
        const wall = [3600, 43_200, 172_800][q % 3] as number;
        const platform = PLATFORMS[(s + q) % PLATFORMS.length] as string;
        const tags = [OS_TAGS[(s * 7 + q) % OS_TAGS.length], ...(q % 2 === 0 ? ['cvmfs:lhcb'] : [])];
        lines.push(
          `          - { name: q${q}, maxCores: ${cores}, memoryMB: ${cores * 4000}, wallTimeSec: ${wall}, platform: ${platform}, tags: [${tags.join(', ')}] }`,
        );
      }
    }
  }
  return `${lines.join('\n')}\n`;
}

export async function benchSiteDirector(options: SiteDirectorBenchOptions): Promise<string> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-sd-'));
  try {
    options.progress(`site-director: populating ${options.jobs} waiting jobs`);
    const population = await populate(path.join(dataDir, 'pilothouse.sqlite'), options.jobs, options.progress);
    const { child, url } = await startServer(dataDir);
    const pid = child.pid as number;
    try {
      const config = parseDirectorConfig(
        directorYaml(options.queues, path.join(dataDir, 'pilots')),
        path.join(dataDir, 'bench.yaml'),
      );
      const queueCount = config.ces.reduce((sum, ce) => sum + ce.queues.length, 0);
      const built = buildDirector({
        config,
        matcherUrls: [url],
        tokenFile: path.join(dataDir, 'admin.token'),
        logger: silentLogger(),
      });
      const token = (await readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();
      if (options.tracked > 0) {
        options.progress(`site-director: registering ${options.tracked} tracked pilots`);
        const pilots = Array.from({ length: options.tracked }, (_, i) => {
          const ce = config.ces[i % config.ces.length]!;
          return {
            stamp: `bench${i}`,
            vo: 'lhcb',
            site: ce.site,
            ce: ce.name,
            queue: ce.queues[0]!.name,
            backend: 'local',
            backendRef: `bench${i}`,
            submittedAt: new Date().toISOString(),
          };
        });
        for (let i = 0; i < pilots.length; i += 1000) {
          const response = await fetch(`${url}/api/pilots`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ director: 'bench', pilots: pilots.slice(i, i + 1000) }),
          });
          if (response.status !== 201) throw new Error(`registering pilots: HTTP ${response.status}`);
        }
      }
      // The demand route alone, as the director calls it: every queue in one request.
      const demandQueues = config.ces.flatMap((ce) =>
        ce.queues.map((queue) => ({
          key: queue.key,
          vo: 'lhcb',
          site: ce.site,
          ce: ce.name,
          queue: queue.name,
          slot: queue.slot,
        })),
      );
      const requestBytes = Buffer.byteLength(JSON.stringify({ queues: demandQueues }));
      for (let i = 0; i < 3; i += 1) await built.matcher.demand(demandQueues); // warm-up
      const demandMs: number[] = [];
      const demandCpu: number[] = [];
      let fitting = 0;
      for (let i = 0; i < 20; i += 1) {
        const cpuBefore = await cpuSec(pid);
        const started = performance.now();
        const answer = await built.matcher.demand(demandQueues);
        demandMs.push(performance.now() - started);
        demandCpu.push((await cpuSec(pid)) - cpuBefore);
        fitting = answer.queues.filter((q) => q.waitingJobs > 0).length;
      }
      options.progress(`site-director: ${options.rounds} cycles over ${queueCount} queues`);
      const wallMs: number[] = [];
      const directorCpuMs: number[] = [];
      const matcherCpuMs: number[] = [];
      await built.director.runCycle(); // warm-up
      for (let round = 0; round < options.rounds; round += 1) {
        const cpuBefore = process.cpuUsage();
        const matcherBefore = await cpuSec(pid);
        const started = performance.now();
        const report = await built.director.runCycle();
        wallMs.push(performance.now() - started);
        const cpu = process.cpuUsage(cpuBefore);
        directorCpuMs.push((cpu.user + cpu.system) / 1000);
        matcherCpuMs.push(((await cpuSec(pid)) - matcherBefore) * 1000);
        if (!report.matcherReachable || report.queues.length !== queueCount)
          throw new Error('the cycle did not see every queue');
      }
      await built.close();
      return [
        `Population: ${options.jobs.toLocaleString('en')} waiting jobs in ${population.taskQueues} task queues (the matching benchmark's).`,
        `Director: ${queueCount} queues on ${config.ces.length} local CEs (cores 1 or 8, wall times 1 h/12 h/48 h, 3 platform levels, 23 OS tags), one VO; ${options.tracked} pilots tracked; caps of 0 pilots per cycle. The director runs in the benchmark's process, the matcher (\`dist/cli.mjs server\`) in its own.`,
        '',
        '| figure | median | p95 | rounds |',
        '| --- | --- | --- | --- |',
        `| cycle wall time | ${fmt(median(wallMs))} ms | ${fmt(percentile(wallMs, 95))} ms | ${wallMs.map((v) => fmt(v, 0)).join(', ')} |`,
        `| director CPU per cycle | ${fmt(median(directorCpuMs))} ms | ${fmt(percentile(directorCpuMs, 95))} ms | ${directorCpuMs.map((v) => fmt(v, 0)).join(', ')} |`,
        `| matcher CPU per cycle | ${fmt(median(matcherCpuMs))} ms | ${fmt(percentile(matcherCpuMs, 95))} ms | ${matcherCpuMs.map((v) => fmt(v, 0)).join(', ')} |`,
        `| demand route latency (${queueCount} queues in one request, ${(requestBytes / 1024).toFixed(0)} KiB) | ${fmt(median(demandMs))} ms | ${fmt(percentile(demandMs, 95))} ms | 20 requests |`,
        `| matcher CPU per demand request | ${fmt(median(demandCpu) * 1000)} ms | ${fmt(percentile(demandCpu, 95) * 1000)} ms | 20 requests (10 ms ticks) |`,
        '',
        `${fitting} of the ${queueCount} queues had waiting jobs that fit them.`,
      ].join('\n');
    } finally {
      child.kill('SIGTERM');
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}
