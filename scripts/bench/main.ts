/**
 * `npm run bench [-- --scenario matching|pilot|site-director|submission|search|dispatch|fleet|scale|all] [--redis URL] [--heartbeat-sec N] [--jobs N] [--pilots N] [--shapes 16x1,2x8] [--duration-sec N]
 *  [--rounds N] [--queues N] [--tracked N] [--db postgres://USER@HOST:PORT/DB]`
 * With --db, the matching scenario also runs on PostgreSQL, with one matcher and with two replicas.
 * Runs the benchmarks and rewrites their sections of BENCHMARKS.md (machine, command, figures).
 * Needs `npm run build` first (it runs the shipped dist/ artifacts).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchMatching } from './matching.ts';
import { benchSiteDirector } from './site-director.ts';
import { benchSubmission } from './submission.ts';
import { benchSearch } from './search.ts';
import { benchDispatch } from './dispatch.ts';
import { benchFleet } from './fleet.ts';
import { benchScale } from './scale.ts';
import { replaceSection, sectionHeader } from './benchmarks-file.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'all' },
    jobs: { type: 'string', default: '870000' },
    pilots: { type: 'string', default: '32' },
    shapes: { type: 'string', default: '16x1,2x8' },
    'duration-sec': { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    probes: { type: 'string', default: '100' },
    queues: { type: 'string', default: '1000' },
    tracked: { type: 'string', default: '0' },
    db: { type: 'string' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
    'heartbeat-sec': { type: 'string', default: '30' },
  },
});
const scenario = values.scenario ?? 'all';
const SCENARIOS = ['matching', 'pilot', 'site-director', 'submission', 'search', 'dispatch', 'fleet', 'scale', 'all'];
if (!SCENARIOS.includes(scenario)) {
  console.error(`--scenario must be one of ${SCENARIOS.join(', ')} (got ${scenario})`);
  process.exit(2);
}
for (const name of [
  'jobs',
  'pilots',
  'duration-sec',
  'rounds',
  'probes',
  'queues',
  'tracked',
  'heartbeat-sec',
] as const) {
  const value = Number(values[name]);
  const mayBeZero = name === 'probes' || name === 'tracked';
  if (!Number.isInteger(value) || value < (mayBeZero ? 0 : 1)) {
    console.error(`--${name} must be a whole number${mayBeZero ? '' : ' above 0'} (got ${values[name]})`);
    process.exit(2);
  }
}
if (!existsSync(path.join(root, 'dist', 'cli.mjs'))) {
  console.error('dist/ is missing: run npm run build first');
  process.exit(2);
}
const progress = (message: string): void => {
  process.stderr.write(`[bench] ${message}\n`);
};
const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
const header = (title: string): string => sectionHeader(title, command);

if (scenario === 'matching' || scenario === 'all') {
  const result = await benchMatching({
    jobs: Number(values.jobs),
    pilots: Number(values.pilots),
    durationSec: Number(values['duration-sec']),
    rounds: Number(values.rounds),
    probes: Number(values.probes),
    db: values.db,
    progress,
  });
  await replaceSection('matching', header('Matching') + result.markdown);
  progress('matching figures written to BENCHMARKS.md');
  process.stdout.write(`${result.markdown}\n`);
}
if (scenario === 'site-director' || scenario === 'all') {
  // The matching population scaled down unless --jobs was given: demand reads task queues, not jobs.
  const jobs = process.argv.includes('--jobs') ? Number(values.jobs) : 200_000;
  const markdown = await benchSiteDirector({
    jobs,
    queues: Number(values.queues),
    tracked: Number(values.tracked),
    rounds: Math.max(5, Number(values.rounds)),
    progress,
  });
  await replaceSection('site-director', header('Site director') + markdown);
  progress('site-director figures written to BENCHMARKS.md');
  process.stdout.write(`${markdown}\n`);
}
if (scenario === 'submission' || scenario === 'all') {
  // 100,000 jobs per submission unless --jobs was given (the matching population is far larger).
  const jobs = process.argv.includes('--jobs') ? Number(values.jobs) : 100_000;
  const markdown = await benchSubmission({ jobs, rounds: Number(values.rounds), progress });
  await replaceSection('submission', header('Bulk submission') + markdown);
  progress('submission figures written to BENCHMARKS.md');
  process.stdout.write(`${markdown}\n`);
}
if (scenario === 'search' || scenario === 'all') {
  // 1,000,000 jobs unless --jobs was given.
  const jobs = process.argv.includes('--jobs') ? Number(values.jobs) : 1_000_000;
  const markdown = await benchSearch({ jobs, rounds: Math.max(5, Number(values.rounds)), progress });
  await replaceSection('search', header('Search and summary') + markdown);
  progress('search figures written to BENCHMARKS.md');
  process.stdout.write(`${markdown}\n`);
}
if (scenario === 'dispatch' || scenario === 'all') {
  // 20,000 jobs unless --jobs was given; shapes PILOTSxSLOTS: 16 one-slot pilots, then 2 of 8 slots.
  const jobs = process.argv.includes('--jobs') ? Number(values.jobs) : 20_000;
  const shapes = values.shapes.split(',').map((shape) => {
    const [pilots, slots] = shape.split('x').map(Number);
    if (!Number.isInteger(pilots) || !Number.isInteger(slots) || (pilots as number) < 1 || (slots as number) < 1)
      throw new Error(`--shapes: "${shape}" is not PILOTSxSLOTS (e.g. 16x1)`);
    return { pilots: pilots as number, slots: slots as number };
  });
  const markdown = await benchDispatch({
    jobs,
    shapes,
    rounds: Number(values.rounds),
    latencySamples: Number(values.probes),
    redisUrl: values.redis ?? 'redis://127.0.0.1:6379',
    progress,
  });
  await replaceSection('dispatch', header('Dispatch: the whole job life, side by side with BullMQ') + markdown);
  progress('dispatch figures written to BENCHMARKS.md');
  process.stdout.write(`${markdown}\n`);
}
if (scenario === 'fleet' || scenario === 'all') {
  // 10,000 pilots and 30 s of measured heartbeats unless --pilots / --duration-sec were given.
  const markdown = await benchFleet({
    pilots: process.argv.includes('--pilots') ? Number(values.pilots) : 10_000,
    durationSec: process.argv.includes('--duration-sec') ? Number(values['duration-sec']) : 30,
    heartbeatSec: Number(values['heartbeat-sec']),
    latencySamples: Number(values.probes),
    progress,
  });
  await replaceSection('fleet', header('Fleet: pilots held by one matcher') + markdown);
  progress('fleet figures written to BENCHMARKS.md');
  process.stdout.write(`${markdown}\n`);
}
if (scenario === 'scale' || scenario === 'all') {
  const markdown = await benchScale({
    pilots: Number(values.pilots),
    durationSec: Number(values['duration-sec']),
    // Five rounds unless told: each is short (a fresh copy of each population, 3,000 timed matches).
    rounds: process.argv.includes('--rounds') ? Number(values.rounds) : 5,
    progress,
  });
  await replaceSection('scale', header('Scale: a million waiting jobs, fifty thousand task queues') + markdown);
  progress('scale figures written to BENCHMARKS.md');
  process.stdout.write(`${markdown}\n`);
}
if (scenario === 'pilot' || scenario === 'all') {
  const pilotBench = path.join(root, 'scripts', 'bench', 'pilot.ts');
  if (existsSync(pilotBench)) {
    const { benchPilot } = (await import(pilotBench)) as { benchPilot(): Promise<string> };
    const markdown = await benchPilot();
    await replaceSection('pilot', markdown);
    process.stdout.write(`${markdown}\n`);
  } else if (scenario === 'pilot') {
    console.error('scripts/bench/pilot.ts is not there yet');
    process.exit(2);
  }
}
