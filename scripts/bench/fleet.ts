/**
 * Fleet benchmark: how many pilots one matcher holds. A matcher process (`dist/cli.mjs server`,
 * SQLite) takes P simulated pilots over real WebSockets (hello, then an offer that parks, as idle
 * pilots do), then every pilot sends a heartbeat each interval (spread over the interval, as pilots
 * started at different times do) for D seconds. Measured: the matcher's RSS before, with P pilots
 * parked and at its peak; its CPU during the heartbeat phase (in cores); heartbeats acked per second;
 * how long connecting took; and, with every pilot parked, submit → match for one job at a time.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { JobSubmitter, submitToMatchLatencies } from './job-submitter.ts';
import { cpuSec, rssMB, startServer, token } from './matching.ts';
import { SimPilot } from './sim-pilot.ts';
import { fmt, percentile } from './stats.ts';
import type { OfferResources } from '../../shared/protocol/messages.ts';

export interface FleetBenchOptions {
  pilots: number;
  durationSec: number;
  heartbeatSec: number;
  latencySamples: number;
  progress(message: string): void;
}

/** Pilots connecting at once (each a TCP connection, an upgrade, a hello and an offer). */
const CONNECT_WAVE = 200;
const RESOURCES: OfferResources = { cores: 8, memoryMB: 16_000, wallTimeSec: 86_400, tags: [] };

export async function benchFleet(options: FleetBenchOptions): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-fleet-'));
  const dataDir = path.join(dir, 'data');
  const { child, url } = await startServer(dataDir, undefined, [
    '--max-connections-per-token',
    String(options.pilots + 10),
    '--heartbeat-interval-sec',
    String(options.heartbeatSec),
  ]);
  const pid = child.pid as number;
  const pilots: SimPilot[] = [];
  let timers: NodeJS.Timeout[] = [];
  try {
    const rssAtStart = await rssMB(pid);
    const pilotToken = await token(dataDir, ['--kind', 'pilot', '--vo', 'local']);
    const adminToken = (await readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();

    const connectStarted = performance.now();
    for (let first = 0; first < options.pilots; first += CONNECT_WAVE) {
      const wave = Array.from({ length: Math.min(CONNECT_WAVE, options.pilots - first) }, async (_, i) => {
        const pilot = new SimPilot(url, pilotToken);
        await pilot.hello(`fleet-${first + i}`, `LCG.Site${(first + i) % 50}.org`);
        const parked = await pilot.offer(RESOURCES);
        if (parked.type !== 'parked') throw new Error(`pilot ${first + i}: expected to park, got ${parked.type}`);
        return pilot;
      });
      pilots.push(...(await Promise.all(wave)));
      if (pilots.length % 2000 === 0) options.progress(`${pilots.length}/${options.pilots} pilots parked`);
    }
    const connectSec = (performance.now() - connectStarted) / 1000;
    const rssParked = await rssMB(pid);

    options.progress(
      `heartbeats every ${options.heartbeatSec} s from ${options.pilots} pilots for ${options.durationSec} s`,
    );
    let acked = 0;
    let peakRss = rssParked;
    const rssTimer = setInterval(() => void rssMB(pid).then((mb) => (peakRss = Math.max(peakRss, mb))), 250);
    // Each pilot's heartbeats start at a random point of the interval, as pilots started apart do.
    const phaseMs = options.heartbeatSec * 1000;
    timers = pilots.map((pilot) => {
      const beat = () => void pilot.heartbeat().then(() => (acked += 1));
      return setTimeout(() => {
        beat();
        timers.push(setInterval(beat, phaseMs));
      }, Math.random() * phaseMs);
    });
    // The first interval ramps up; what is counted starts once every pilot beats.
    await new Promise((resolve) => setTimeout(resolve, phaseMs));
    const ackedAtStart = acked;
    const cpuAtStart = await cpuSec(pid);
    const measuredStarted = performance.now();
    await new Promise((resolve) => setTimeout(resolve, options.durationSec * 1000));
    const measuredSec = (performance.now() - measuredStarted) / 1000;
    const heartbeatCores = ((await cpuSec(pid)) - cpuAtStart) / measuredSec;
    const heartbeatsPerSec = (acked - ackedAtStart) / measuredSec;
    clearInterval(rssTimer);
    for (const timer of timers) clearTimeout(timer);

    // One job at a time, to whichever of the parked pilots the matcher picks.
    const submitter = new JobSubmitter(url, adminToken);
    const latencyMs = await submitToMatchLatencies(submitter, pilots, RESOURCES, options.latencySamples);
    await submitter.close();
    const rssEnd = await rssMB(pid);
    return [
      `${options.pilots} simulated pilots on one matcher (SQLite), each parked on an offer and sending a heartbeat every ${options.heartbeatSec} s; heartbeat load measured over ${options.durationSec} s after a full interval of ramp-up.`,
      '',
      '| | |',
      '| --- | ---: |',
      `| matcher RSS: started / ${options.pilots} pilots parked / peak / end | ${fmt(rssAtStart, 0)} / ${fmt(rssParked, 0)} / ${fmt(peakRss, 0)} / ${fmt(rssEnd, 0)} MB |`,
      `| connecting and parking ${options.pilots} pilots (${CONNECT_WAVE} at a time) | ${fmt(connectSec, 1)} s (${fmt(options.pilots / connectSec, 0)} pilots/s) |`,
      `| heartbeats acked | ${fmt(heartbeatsPerSec, 0)} /s |`,
      `| **matcher CPU while heartbeats flow** | **${fmt(heartbeatCores, 3)} cores** (${fmt((heartbeatCores * 1e6) / Math.max(heartbeatsPerSec, 1), 0)} µs per heartbeat) |`,
      `| submit → match with ${options.pilots} pilots parked, p50 / p99 (${latencyMs.length} jobs) | ${fmt(percentile(latencyMs, 50), 2)} / ${fmt(percentile(latencyMs, 99), 2)} ms |`,
    ].join('\n');
  } finally {
    for (const timer of timers) clearTimeout(timer);
    for (const pilot of pilots) pilot.ws.terminate();
    child.kill('SIGTERM');
    await once(child, 'exit');
    await rm(dir, { recursive: true, force: true });
  }
}
