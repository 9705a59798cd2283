/**
 * The site director against the lab's real SLURM (slurmctld + slurmd with munge, slurmdbd for sacct)
 * and a real matcher: pilots go through sbatch, start under slurmd, download the bundle, exchange
 * their one-time secrets, pull jobs and run them; the director follows them to their end, records it
 * and fetches their output. Queues whose wall time or cores no waiting job fits get no pilot; a pilot
 * cancelled at the CE ends Aborted; a pilot SLURM kills for memory ends Failed with that reason.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { silentLogger } from '../../shared/logger.ts';
import type { DirectorReport } from '../../shared/protocol/site-director.ts';
import { parseDirectorConfig } from '../../site-director/config/load.ts';
import { buildDirector } from '../../site-director/service.ts';
import type { SiteDirector } from '../../site-director/director.ts';
import { cyclesUntil } from '../helpers/director.ts';
import { lab } from '../helpers/lab.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';

const l = lab();
let m: TestMatcher;
let dir: string;
let director: SiteDirector;
let close: () => Promise<void>;
let userToken: string;

const SITE = 'LCG.Lab.test';

before(async () => {
  m = await startTestMatcher();
  dir = await mkdtemp(path.join(os.tmpdir(), 'ph-slurm-director-'));
  userToken = await m.userToken('alice', 'lab');
  const yaml = `
name: lab-slurm
cycle: { ceTimeoutSec: 30, lostAfterSec: 600 }
pilot: { idleTimeoutSec: 4 }
sites:
  - name: ${SITE}
    vos: [lab]
    ces:
      - name: slurm.lab
        type: slurm
        slurm: { outputDir: ${dir}/slurm-output, accounting: ${l.slurm.sacct} }
        maxWaitingPilots: 2
        maxPilotsPerCycle: 2
        queues:
          - name: debug
            maxCores: 2
            memoryMB: 1000
            wallTimeSec: 3600
          - name: short            # a partition whose wall time (60 s) no waiting job fits
            maxCores: 2
            memoryMB: 1000
            wallTimeSec: 60
          - name: narrow           # 1 core: no waiting job fits
            batchQueue: debug
            maxCores: 1
            memoryMB: 1000
            wallTimeSec: 3600
          - name: lowmem           # SLURM kills its pilots above 300 MB
            batchQueue: debug
            maxCores: 1
            memoryMB: 300
            wallTimeSec: 3600
            tags: [lowmem]
            requiredTags: [lowmem]
            pilot: { extraArgs: [--memory-limit-policy, 'off'] }
      - name: slurm-held.lab     # its pilots are submitted held (sbatch --hold): they wait until released
        type: slurm
        slurm: { outputDir: ${dir}/slurm-output, accounting: ${l.slurm.sacct}, submitOptions: [--hold] }
        queues:
          - name: held
            batchQueue: debug
            maxCores: 1
            memoryMB: 500
            wallTimeSec: 3600
            tags: [held]
            requiredTags: [held]
`;
  const config = parseDirectorConfig(yaml, path.join(dir, 'director.yaml'));
  const built = buildDirector({
    config,
    matcherUrls: [m.url],
    tokenFile: m.matcher.adminTokenPath,
    logger: silentLogger(),
  });
  director = built.director;
  close = built.close;
});

after(async () => {
  await close();
  await m.close();
  await rm(dir, { recursive: true, force: true });
});

async function submit(description: object, count = 1): Promise<number[]> {
  const response = await m.api('POST', '/api/jobs', {
    token: userToken,
    json: Array.from({ length: count }, () => description),
  });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.jobIds as number[];
}

async function pilotsOf(query: string): Promise<any[]> {
  return (await m.api('GET', `/api/pilots?perPage=100&${query}`)).body.pilots;
}

it('slurm - pilots submitted through sbatch run the waiting jobs; queues no job fits get none; ends and outputs are recorded', async () => {
  const ids = await submit(
    {
      executable: '/bin/sh',
      arguments: ['-c', 'echo ran on $(hostname)'],
      requirements: { cores: { min: 2 }, wallTimeSec: 1800 },
    },
    3,
  );
  const reports = await cyclesUntil(director, 'every job Done and every pilot ended', async () => {
    const jobs = (await m.api('POST', '/api/jobs/search', { token: userToken, json: { ids } })).body.jobs as {
      status: string;
    }[];
    const tracked = await pilotsOf('tracked=true');
    return jobs.every((job) => job.status === 'Done') && tracked.length === 0;
  });

  const first = reports[0] as DirectorReport;
  const decision = (queue: string) => first.queues.find((q) => q.queue === queue);
  assert.equal(decision('debug')?.waitingJobs, 3);
  assert.equal(decision('debug')?.submitted, 2, 'capped by maxPilotsPerCycle/maxWaitingPilots');
  for (const queue of ['short', 'narrow']) {
    assert.equal(decision(queue)?.submitted, 0, queue);
    assert.equal(decision(queue)?.pilotsNeeded, 0, queue);
    assert.match(decision(queue)?.reason ?? '', /no waiting job fits/);
  }
  const everySubmitted = reports.flatMap((r) => r.queues).filter((q) => q.queue !== 'debug');
  assert.ok(
    everySubmitted.every((q) => q.submitted === 0),
    'no pilot ever went to short or narrow',
  );

  const pilots = await pilotsOf(`site=${SITE}&queue=debug`);
  assert.ok(pilots.length >= 2);
  const ran = pilots.filter((p) => p.jobsMatched > 0);
  assert.ok(ran.length >= 1, 'a pilot ran the jobs');
  for (const pilot of pilots) {
    assert.equal(pilot.backend, 'slurm');
    assert.match(pilot.backendRef, /^\d+$/);
    assert.equal(pilot.tracked, false);
  }
  const pilot = ran[0];
  assert.equal(pilot.status, 'Done');
  assert.equal(pilot.backendStatus, 'COMPLETED');
  assert.equal(pilot.exitCode, 0);
  const detail = (await m.api('GET', `/api/pilots/${pilot.id}`)).body;
  const story = detail.history.map((h: { status: string; source: string }) => `${h.status}/${h.source}`);
  assert.equal(story[0], 'Submitted/director');
  assert.ok(story.includes('Running/pilot'), story.join(' '));
  assert.ok(story.includes('Done/pilot') || story.includes('Done/backend'), story.join(' '));
  assert.ok(detail.jobs.length >= 1);
  const output = (await m.api('GET', `/api/pilots/${pilot.id}/output`)).body;
  assert.match(output.stderr, new RegExp(`pilothouse-wrapper: pilot ${pilot.id}`));
  assert.match(output.stderr, /the pilot exited with code 0/);
  assert.doesNotMatch(`${output.stdout}${output.stderr}`, /phps_/, 'the secret never reaches the output');
});

it('slurm - a pilot held at the CE is Waiting with the hold as its reason; cancelled there, it ends Aborted', async () => {
  const [jobId] = await submit({ executable: '/bin/true', requirements: { wallTimeSec: 1800, tags: ['held'] } });
  await cyclesUntil(director, 'a held pilot', async () => (await pilotsOf('queue=held&status=Waiting')).length > 0, {
    timeoutMs: 30_000,
  });
  const [held] = await pilotsOf('queue=held&status=Waiting');
  assert.equal(held.backendStatus, 'PENDING');
  assert.match(held.statusReason, /JobHeldUser/);
  await m.api('POST', `/api/jobs/${jobId}/kill`, { token: userToken });
  await execa('scancel', [held.backendRef]);
  await cyclesUntil(director, 'the cancelled pilot ended', async () => !(await pilotsOf(`id=${held.id}`))[0].tracked, {
    timeoutMs: 30_000,
  });
  const [ended] = await pilotsOf(`id=${held.id}`);
  assert.equal(ended.status, 'Aborted');
  assert.match(ended.backendStatus, /CANCELLED/);
  assert.match(ended.statusReason, /cancelled/);
  const history = (await m.api('GET', `/api/pilots/${held.id}`)).body.history.map((h: { status: string }) => h.status);
  assert.deepEqual(history, ['Submitted', 'Waiting', 'Aborted']);
});

it('slurm - a pilot that SLURM kills for memory ends Failed with that reason', async () => {
  const [jobId] = await submit({
    executable: 'node',
    arguments: [
      '-e',
      'const a = []; for (let i = 0; i < 40; i++) a.push(Buffer.alloc(20 * 1024 * 1024, 1)); setTimeout(() => {}, 30000)',
    ],
    requirements: { cores: { min: 1 }, memoryMB: 100, wallTimeSec: 600, tags: ['lowmem'] },
  });
  // The pilot that took the job (another may be sent while the first is between its hello and its
  // match: demand counts waiting jobs, and the job was still waiting then).
  const ranTheJob = async () => (await pilotsOf('queue=lowmem')).find((p) => p.jobsMatched > 0);
  await cyclesUntil(director, 'the pilot that took the job ended', async () => (await ranTheJob())?.tracked === false);
  const pilot = await ranTheJob();
  assert.equal(pilot.status, 'Failed');
  assert.match(pilot.statusReason, /memory/);
  assert.equal(pilot.exitCode, 137);
  const output = (await m.api('GET', `/api/pilots/${pilot.id}/output`)).body;
  assert.match(`${output.stdout}${output.stderr}`, /memory limit/i);
  await m.api('POST', `/api/jobs/${jobId}/kill`, { token: userToken });
});
