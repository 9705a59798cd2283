/** Time left from each batch system, on their real output formats, and the earliest end winning. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  detectBatchSystem,
  findSlotEnds,
  htcondorEnd,
  mjfEnd,
  parseClassAd,
  parseDuration,
  parseQstatTimeLeft,
  parseSqueueTimeLeft,
  readJobFeatureLimits,
  type TimeLeftDeps,
} from '../../pilot/time-left.ts';

const NOW = Date.parse('2026-03-01T12:00:00Z');

/** `qstat -f 1234.pbs01` (Torque/OpenPBS), trimmed. */
const QSTAT_F = `Job Id: 1234.pbs01.example.org
    Job_Name = pilot
    Job_Owner = pltlhcb@ce01.example.org
    resources_used.cput = 00:41:07
    resources_used.mem = 1532492kb
    resources_used.walltime = 01:10:00
    job_state = R
    queue = long
    Resource_List.nodes = 1:ppn=8
    Resource_List.walltime = 48:00:00
`;

/** The job ad HTCondor writes to $_CONDOR_JOB_AD, trimmed. */
const JOB_AD = `ClusterId = 4711
ProcId = 0
Owner = "pltatlas"
JobCurrentStartDate = 1772366400
JobStartDate = 1772360000
MaxRuntime = 172800
RequestCpus = 8
`;

test('durations: SLURM and PBS forms', () => {
  assert.equal(parseDuration('1-02:03:04'), 93_784);
  assert.equal(parseDuration('02:03:04'), 7384);
  assert.equal(parseDuration('03:04'), 184);
  assert.equal(parseDuration('59'), 59);
  assert.equal(parseDuration('2-12'), 2 * 86_400 + 12 * 3600);
  assert.equal(parseDuration('48:00:00'), 172_800);
  assert.equal(parseDuration('soon'), null);
});

test('SLURM squeue %L: time left, or unknown when unlimited', () => {
  assert.equal(parseSqueueTimeLeft('1-23:59:58\n'), 172_798);
  assert.equal(parseSqueueTimeLeft('UNLIMITED\n'), null);
  assert.equal(parseSqueueTimeLeft('NOT_SET'), null);
  assert.equal(parseSqueueTimeLeft(''), null);
});

test('PBS qstat -f: walltime limit minus walltime used', () => {
  assert.equal(parseQstatTimeLeft(QSTAT_F), 48 * 3600 - 70 * 60);
  assert.equal(parseQstatTimeLeft('Job Id: 1\n    job_state = Q\n'), null);
});

test('HTCondor job ad: current start date plus MaxRuntime (or MaxWallTimeMins)', () => {
  const ad = parseClassAd(JOB_AD);
  assert.equal(ad.get('owner'), 'pltatlas');
  assert.equal(htcondorEnd(ad, NOW), (1_772_366_400 + 172_800) * 1000);
  assert.equal(
    htcondorEnd(parseClassAd('MaxWallTimeMins = 60\n'), NOW),
    NOW + 3_600_000,
    'no start date: the pilot start',
  );
  assert.equal(htcondorEnd(parseClassAd('RequestCpus = 1\n'), NOW), null);
});

test('WLCG job/machine features: the earliest of the job limit and the shutdown times', () => {
  assert.equal(mjfEnd({ jobstartSecs: 1000, wallLimitSecs: 500 }), 1_500_000);
  assert.equal(mjfEnd({ jobstartSecs: 1000, wallLimitSecs: 500, shutdowntime: 1200 }), 1_200_000);
  assert.equal(mjfEnd({ shutdowntimeJob: 900 }), 900_000);
  assert.equal(mjfEnd({}), null);
});

test('batch system detection from the environment each one sets', () => {
  assert.deepEqual(detectBatchSystem({ SLURM_JOB_ID: '99' }), { system: 'slurm', jobId: '99' });
  assert.deepEqual(detectBatchSystem({ _CONDOR_JOB_AD: '/x/.job.ad' }), { system: 'htcondor', jobId: null });
  assert.deepEqual(detectBatchSystem({ PBS_JOBID: '1.pbs' }), { system: 'pbs', jobId: '1.pbs' });
  assert.deepEqual(detectBatchSystem({}), { system: null, jobId: null });
});

function deps(over: Partial<TimeLeftDeps>): TimeLeftDeps {
  return {
    env: {},
    run: async () => null,
    readText: async () => null,
    nowMs: () => NOW,
    startMs: NOW,
    configuredWallTimeSec: null,
    ...over,
  };
}

test('findSlotEnds: every source that applies, earliest first; nothing known means no end', async () => {
  assert.deepEqual(await findSlotEnds(deps({})), []);
  const commands: string[] = [];
  const ends = await findSlotEnds(
    deps({
      env: { SLURM_JOB_ID: '77', PBS_JOBID: '1234.pbs01', _CONDOR_JOB_AD: '/scratch/.job.ad' },
      configuredWallTimeSec: 86_400,
      run: async (command, args) => {
        commands.push(`${command} ${args.join(' ')}`);
        return command === 'squeue' ? '10:00:00\n' : command === 'qstat' ? QSTAT_F : null;
      },
      readText: async (file) => (file === '/scratch/.job.ad' ? JOB_AD : null),
    }),
  );
  assert.deepEqual(commands, ['squeue -h -j 77 -o %L', 'qstat -f 1234.pbs01']);
  assert.deepEqual(
    ends.map((end) => end.source),
    ['slurm', 'configured', 'pbs', 'htcondor'],
  );
  assert.equal(ends[0]?.endsAtMs, NOW + 36_000_000);
  // SLURM_JOB_END_TIME, when the batch system gives it, spares the squeue call.
  const direct = await findSlotEnds(
    deps({
      env: { SLURM_JOB_ID: '77', SLURM_JOB_END_TIME: String(NOW / 1000 + 60) },
      run: async () => assert.fail('no command'),
    }),
  );
  assert.deepEqual(direct, [{ source: 'slurm', endsAtMs: NOW + 60_000 }]);
});

test('MJF directories: end time and slot limits (cores, memory, scratch)', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mjf-'));
  const job = path.join(dir, 'job');
  const machine = path.join(dir, 'machine');
  await mkdir(job);
  await mkdir(machine);
  await writeFile(path.join(job, 'jobstart_secs'), `${NOW / 1000 - 100}\n`);
  await writeFile(path.join(job, 'wall_limit_secs'), '3600\n');
  await writeFile(path.join(job, 'allocated_cpu'), '8\n');
  await writeFile(path.join(job, 'max_rss_bytes'), String(16 * 1024 ** 3));
  await writeFile(path.join(job, 'scratch_limit_bytes'), String(100 * 1024 ** 3));
  await writeFile(path.join(machine, 'shutdowntime'), `${NOW / 1000 + 1800}`);
  const env = { JOBFEATURES: job, MACHINEFEATURES: machine };
  assert.deepEqual(await findSlotEnds(deps({ env })), [{ source: 'mjf', endsAtMs: NOW + 1_800_000 }]);
  assert.deepEqual(await readJobFeatureLimits(env), { cores: 8, memoryMB: 16_384, diskMB: 102_400 });
  assert.deepEqual(await readJobFeatureLimits({}), { cores: null, memoryMB: null, diskMB: null });
});
