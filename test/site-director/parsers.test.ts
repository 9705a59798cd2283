/**
 * What backends make of their batch systems' answers, on recorded formats (SLURM 22.05, HTCondor 25,
 * A-REX REST 1.0): every native state maps to a pilot status with its reason, the odd ones included,
 * and garbage is CE_BAD_ANSWER, never a crash.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { PilothouseError } from '../../shared/errors.ts';
import { mapArcState } from '../../site-director/backends/arc.ts';
import { mapJobAd, parseJobAds } from '../../site-director/backends/htcondor.ts';
import { parseFramedOutput } from '../../site-director/backends/output-files.ts';
import {
  mapSlurmState,
  parseSacct,
  parseScontrolJob,
  refineSlurmFromOutput,
} from '../../site-director/backends/slurm.ts';
import { exitReason } from '../../site-director/wrapper/exit-codes.ts';

it('slurm - sacct -P lines: CANCELLED by <uid>, exit codes as status:signal', () => {
  const jobs = parseSacct(
    ['9|COMPLETED|0:0|None', '10|FAILED|7:0|None', '11|CANCELLED by 0|0:0|None', '16|FAILED|0:9|None', ''].join('\n'),
    'test',
  );
  assert.deepEqual(jobs.get('11'), { state: 'CANCELLED', reason: 'by 0', exit: { status: 0, signal: 0 } });
  const failed = jobs.get('10');
  assert.deepEqual(mapSlurmState(failed!.state, failed!.reason, failed!.exit), {
    status: 'Failed',
    native: 'FAILED',
    reason: 'exit code 7: the pilot wrapper ended with an error',
    exitCode: 7,
  });
  const killed = jobs.get('16');
  assert.equal(mapSlurmState(killed!.state, killed!.reason, killed!.exit).exitCode, 137);
  assert.throws(
    () => parseSacct('<html>', 'test'),
    (e) => e instanceof PilothouseError && e.code === 'CE_BAD_ANSWER',
  );
});

it('slurm - scontrol show job -o (a purged-accounting fallback)', () => {
  const line =
    'JobId=7 JobName=t UserId=root(0) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:15 RunTime=00:01:29';
  assert.deepEqual(parseScontrolJob(line), { state: 'TIMEOUT', reason: 'TimeLimit', exit: { status: 0, signal: 15 } });
  assert.equal(parseScontrolJob('slurm_load_jobs error: Invalid job id specified'), null);
});

it('slurm - every state maps, the odd ones with their reasons', () => {
  const map = (state: string, reason = 'None') => mapSlurmState(state, reason, null);
  assert.deepEqual(
    [map('PENDING', 'Resources').status, map('PENDING', 'Resources').reason],
    ['Waiting', 'pending (Resources)'],
  );
  assert.equal(map('PENDING', 'JobHeldUser').reason, 'pending (JobHeldUser)');
  assert.equal(map('SUSPENDED').status, 'Waiting');
  assert.equal(map('CONFIGURING').status, 'Waiting');
  assert.equal(map('RUNNING').status, 'Running');
  assert.equal(map('COMPLETING').status, 'Running');
  assert.deepEqual(
    [map('OUT_OF_MEMORY').status, map('OUT_OF_MEMORY').reason],
    ['Failed', 'the batch system killed the pilot for exceeding its memory'],
  );
  assert.deepEqual(
    [map('TIMEOUT').status, map('TIMEOUT').reason],
    ['Failed', 'the batch system killed the pilot at its wall-time limit'],
  );
  assert.deepEqual([map('NODE_FAIL').status, map('NODE_FAIL').reason], ['Failed', 'the node running the pilot failed']);
  assert.deepEqual(
    [map('BOOT_FAIL').status, map('BOOT_FAIL').reason],
    ['Failed', 'the node for the pilot failed to boot'],
  );
  assert.deepEqual([map('PREEMPTED').status, map('PREEMPTED').reason], ['Aborted', 'preempted by the batch system']);
  assert.equal(map('CANCELLED').status, 'Aborted');
  assert.equal(mapSlurmState('COMPLETED', 'None', { status: 0, signal: 0 }).status, 'Done');
  assert.deepEqual([map('NEW_STATE_2030').status, map('NEW_STATE_2030').native], ['Unknown', 'NEW_STATE_2030']);
});

it('slurm - a bare FAILED with slurmstepd’s memory message in the output is a memory kill', () => {
  const failed = mapSlurmState('FAILED', 'None', { status: 0, signal: 9 });
  const refined = refineSlurmFromOutput(failed, {
    stdout: '',
    stderr:
      'slurmstepd-vm: error: StepId=16.batch exceeded memory limit (348254208 > 314572800), being killed\nslurmstepd-vm: error: Exceeded job memory limit\n',
    truncated: false,
  });
  assert.equal(refined.reason, 'the batch system killed the pilot for exceeding its memory');
  assert.equal(refineSlurmFromOutput(failed, { stdout: 'fine', stderr: '', truncated: false }), failed);
});

it('htcondor - condor_q -json output: nothing for no match, `[\\n]` from condor_history, ads separated by \\n,\\n', () => {
  assert.deepEqual(parseJobAds('', 'q'), []);
  assert.deepEqual(parseJobAds('[\n]\n', 'h'), []);
  const ads = parseJobAds(
    '[\n{\n  "ClusterId": 123,\n  "HoldReason": "Failed to transfer files",\n  "HoldReasonCode": 13,\n  "HoldReasonSubCode": 2,\n  "JobStatus": 5,\n  "ProcId": 0\n}\n,\n{\n  "ClusterId": 123,\n  "JobStatus": 2,\n  "ProcId": 1\n}\n]\n',
    'q',
  );
  assert.equal(ads.length, 2);
  const held = mapJobAd(ads[0]!);
  assert.deepEqual([held.status, held.cancelToEnd], ['Aborted', true]);
  assert.match(held.reason, /held \(code 13\/2\): Failed to transfer files/);
  assert.equal(mapJobAd(ads[1]!).status, 'Running');
  assert.throws(
    () => parseJobAds('<html>502</html>', 'q'),
    (e) => e instanceof PilothouseError && e.code === 'CE_BAD_ANSWER',
  );
  assert.throws(
    () => parseJobAds('[{"ClusterId": "x"}]', 'q'),
    (e) => e instanceof PilothouseError && e.code === 'CE_BAD_ANSWER',
  );
});

it('htcondor - JobStatus codes, spooling holds, removals and exits by signal', () => {
  const ad = (fields: object) => mapJobAd({ ClusterId: 1, ProcId: 0, JobStatus: 1, ...fields });
  assert.equal(ad({ JobStatus: 1 }).status, 'Waiting');
  assert.deepEqual(
    [ad({ JobStatus: 5, HoldReasonCode: 16 }).status, ad({ JobStatus: 5, HoldReasonCode: 16 }).cancelToEnd],
    ['Waiting', undefined],
  );
  assert.match(ad({ JobStatus: 3, RemoveReason: 'via condor_rm (by user alice)' }).reason, /removed: via condor_rm/);
  assert.deepEqual([ad({ JobStatus: 4, ExitCode: 0 }).status, ad({ JobStatus: 4, ExitCode: 0 }).exitCode], ['Done', 0]);
  assert.deepEqual(
    [ad({ JobStatus: 4, ExitCode: 64 }).status, ad({ JobStatus: 4, ExitCode: 64 }).reason],
    ['Failed', 'exit code 64: no Node.js >= 20 on the worker node'],
  );
  assert.deepEqual([ad({ JobStatus: 4, ExitBySignal: true, ExitSignal: 9 }).exitCode], [137]);
  assert.equal(ad({ JobStatus: 6 }).status, 'Running');
  assert.equal(ad({ JobStatus: 7 }).status, 'Running');
  assert.equal(ad({ JobStatus: 42 }).status, 'Unknown');
});

it('arc - A-REX states, FAILED with its exit code and error, KILLED, WIPED', () => {
  assert.equal(mapArcState('ACCEPTED', null, '').status, 'Waiting');
  assert.equal(mapArcState('PREPARING', null, '').status, 'Waiting');
  assert.equal(mapArcState('HELD', null, '').reason, 'held by the CE');
  assert.equal(mapArcState('EXITINGLRMS', null, '').status, 'Running');
  assert.deepEqual(mapArcState('FINISHED', null, ''), {
    status: 'Done',
    native: 'FINISHED',
    reason: 'exit code 0: the pilot ended normally',
    exitCode: 0,
  });
  const failed = mapArcState('FAILED', 3, 'LRMS error: (3) Job finished with wrong exit code - 3 != 0');
  assert.deepEqual([failed.status, failed.exitCode], ['Failed', 3]);
  assert.match(failed.reason, /exit code 3: .*LRMS error/);
  assert.equal(mapArcState('KILLING', null, '').status, 'Running');
  assert.equal(mapArcState('KILLED', null, '').status, 'Aborted');
  assert.equal(mapArcState('WIPED', null, '').status, 'Aborted');
  assert.equal(mapArcState('DELETED', null, '').status, 'Aborted');
  assert.equal(mapArcState('', null, '').status, 'Unknown');
});

it('output framing survives any content and refuses a cut answer', () => {
  const b = 'f'.repeat(32);
  const framed = `${b} file 11\nline\n${b} x\n\n${b} file 0\n\n${b} end\n`;
  assert.deepEqual(parseFramedOutput(framed, b, 'test'), { stdout: `line\n${b} x\n`, stderr: '', truncated: false });
  assert.throws(
    () => parseFramedOutput(`${b} file 3\nabc\n`, b, 'test'),
    (e) => e instanceof PilothouseError && e.code === 'CE_BAD_ANSWER',
  );
});

it('wrapper exit codes explain why a pilot never started', () => {
  assert.equal(exitReason(66), 'exit code 66: the wrapper could not download the pilot bundle from the matcher');
  assert.equal(exitReason(143), 'exit code 143: the pilot was killed by signal 15');
});
