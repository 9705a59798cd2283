/**
 * `pilothouse logs ID --follow` on a job run by a real pilot: the payload's first line arrives with a
 * heartbeat while it still runs, the rest and the final status once it ends, and the command exits
 * when the job is final. The stored tail then holds both streams as the payload wrote them.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { CLI, runCli } from '../helpers/cli-process.ts';

let m: TestMatcher;
let pilot: PilotProcess;
let work: string;
let env: Record<string, string>;

before(async () => {
  m = await startTestMatcher({ heartbeatIntervalSec: 1 });
  work = await mkdtemp(path.join(os.tmpdir(), 'ph-logs-'));
  await writeFile(path.join(work, 'admin.token'), m.adminToken);
  env = { PILOTHOUSE_MATCHER: m.url, PILOTHOUSE_TOKEN_FILE: path.join(work, 'admin.token') };
  pilot = await spawnPilot({
    matcherUrl: m.url,
    token: await m.pilotToken('local'),
    args: ['--idle-timeout-sec', '600', '--isolation', 'none'],
  });
});
after(async () => {
  await pilot.stop();
  await m.close();
  await rm(work, { recursive: true, force: true });
});

it('--follow prints the output while the job runs, the rest when it ends, and exits when it is final', async () => {
  const release = path.join(work, 'release');
  const script = `echo first-line; echo oops >&2; while [ ! -e ${release} ]; do sleep 0.1; done; echo second-line; exit 3`;
  const submitted = await m.api('POST', '/api/jobs', { json: { executable: '/bin/sh', arguments: ['-c', script] } });
  assert.equal(submitted.status, 201);
  const [jobId] = submitted.body.jobIds as number[];

  const follow = spawn(process.execPath, [CLI, 'logs', String(jobId), '--follow', '--interval-sec', '0.2'], {
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  let stdout = '';
  let stderr = '';
  follow.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // 'close', not 'exit': the last chunks of stdout may still be in the pipe when the process exits.
  const exited = once(follow, 'close');
  // One listener for the whole run: a chunk that arrives while the test awaits something else is kept.
  let onOutput = () => {};
  follow.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    onOutput();
  });
  // The first line can only come from a heartbeat: the payload is blocked until the release file exists.
  await new Promise<void>((resolve, reject) => {
    onOutput = () => {
      if (stdout.includes('first-line')) resolve();
    };
    follow.once('exit', () => reject(new Error(`logs exited early: ${stdout} ${stderr}`)));
  });
  onOutput = () => {};
  assert.doesNotMatch(stdout, /second-line/);
  const running = (await m.api('GET', `/api/jobs/${jobId}`)).body.status;
  assert.equal(running, 'Running', 'the output arrived while the payload ran');
  await writeFile(release, '');
  const [code] = await exited;
  assert.equal(code, 0, stderr);
  assert.match(stdout, /second-line/);
  assert.match(stdout, /oops/);
  assert.match(stdout, /Failed/, 'the final status was printed');

  const logs = await runCli(['logs', String(jobId), '--json'], env);
  assert.equal(logs.code, 0, logs.stderr);
  const body = JSON.parse(logs.stdout);
  assert.equal(body.status, 'Failed');
  assert.deepEqual([body.outputTail.stdout, body.outputTail.stderr], ['first-line\nsecond-line\n', 'oops\n']);
  assert.ok(body.history.some((h: { status: string }) => h.status === 'Completing'));

  assert.equal((await runCli(['logs', '999999'], env)).code, 4, 'an unknown job');
});
