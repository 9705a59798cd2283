/** The `pilothouse` command as a user runs it: dist/cli.mjs in child processes against a real matcher. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { runCli } from '../helpers/cli-process.ts';
import { startServerProcess } from '../helpers/server-process.ts';
import { waitFor } from '../helpers/wait.ts';

const cli = runCli;

describe('pilothouse CLI', () => {
  let m: TestMatcher;
  let work: string;
  let env: Record<string, string>;
  let pilot: PilotProcess;

  before(async () => {
    m = await startTestMatcher();
    work = await mkdtemp(path.join(os.tmpdir(), 'ph-cli-'));
    const tokenFile = path.join(work, 'admin.token');
    await writeFile(tokenFile, m.adminToken);
    env = { PILOTHOUSE_MATCHER: m.url, PILOTHOUSE_TOKEN_FILE: tokenFile };
    pilot = await spawnPilot({
      matcherUrl: m.url,
      token: await m.pilotToken('local'),
      args: ['--idle-timeout-sec', '600'],
    });
  });
  after(async () => {
    await pilot.stop();
    await m.close();
  });

  it('--help works on every command', async () => {
    for (const args of [
      [],
      ['server'],
      ['pilot'],
      ['up'],
      ['demo'],
      ['submit'],
      ['status'],
      ['jobs'],
      ['logs'],
      ['run'],
      ['output'],
      ['kill'],
      ['reschedule'],
      ['delete'],
      ['token', 'issue'],
      ['site-director'],
      ['site-director', 'status'],
      ['pilots'],
      ['pilots', 'list'],
      ['pilots', 'output'],
    ]) {
      const result = await cli([...args, '--help']);
      assert.equal(result.code, 0, `pilothouse ${args.join(' ')} --help`);
      assert.match(result.stdout, /Usage:/);
    }
  });

  it('submit → status → jobs → output, with --json for scripts', async () => {
    const file = path.join(work, 'job.json');
    await writeFile(
      file,
      JSON.stringify({
        name: 'cli-job',
        executable: '/bin/sh',
        arguments: ['-c', 'echo from-cli > answer.txt'],
        outputSandbox: ['answer.txt'],
      }),
    );
    const submitted = await cli(['submit', file, '--json'], env);
    assert.equal(submitted.code, 0, submitted.stderr);
    const [id] = JSON.parse(submitted.stdout).jobIds as number[];
    await waitFor(async () => {
      const status = await cli(['status', String(id), '--json'], env);
      return JSON.parse(status.stdout).status === 'Done';
    }, 'the job to be Done');
    const human = await cli(['status', String(id), '--history'], env);
    assert.match(human.stdout, /Done\s+Execution Complete/);
    assert.match(human.stdout, /Matched\s+Assigned/);
    const listed = JSON.parse((await cli(['jobs', '--status', 'Done', '--json'], env)).stdout);
    assert.ok(listed.jobs.some((j: { id: number }) => j.id === id));
    const outDir = path.join(work, 'out');
    const output = await cli(['output', String(id), '--dir', outDir, '--json'], env);
    assert.equal(output.code, 0, output.stderr);
    assert.equal(await readFile(path.join(outDir, 'answer.txt'), 'utf8'), 'from-cli\n');
  });

  it('kill stops a running job; reschedule runs it again as attempt 2 (--json); delete ends it; an unknown job exits 4', async () => {
    const file = path.join(work, 'sleeper.json');
    await writeFile(file, JSON.stringify({ name: 'sleeper', executable: 'sleep', arguments: ['60'] }));
    const [id] = JSON.parse((await cli(['submit', file, '--json'], env)).stdout).jobIds as number[];
    const statusOf = async () => JSON.parse((await cli(['status', String(id), '--json'], env)).stdout);
    await waitFor(async () => (await statusOf()).status === 'Running', 'the sleeper running');
    const killed = await cli(['kill', String(id), '--json'], env);
    assert.deepEqual(JSON.parse(killed.stdout), [{ jobId: id, status: 'Killed', killed: true }]);
    const rescheduled = await cli(['reschedule', String(id), '--json'], env);
    assert.equal(rescheduled.code, 0, rescheduled.stderr);
    assert.deepEqual(JSON.parse(rescheduled.stdout), [{ jobId: id, attempt: 2, status: 'Waiting' }]);
    await waitFor(async () => {
      const now = await statusOf();
      return now.status === 'Running' && now.attempt === 2;
    }, 'attempt 2 running');
    assert.equal((await cli(['kill', String(id)], env)).stdout, `job ${id}: killed\n`);
    assert.equal((await cli(['reschedule', '999999'], env)).code, 4);
    const deleted = await cli(['delete', String(id), '--json'], env);
    assert.deepEqual(JSON.parse(deleted.stdout), [{ jobId: id, status: 'Deleted', deleted: true }]);
    assert.equal((await cli(['delete', String(id)], env)).stdout, `job ${id}: already Deleted\n`);
  });

  it('bad input, auth failures, unknown jobs and an unreachable matcher have distinct exit codes', async () => {
    const bad = path.join(work, 'bad.json');
    await writeFile(
      bad,
      JSON.stringify([{ executable: 'ok' }, { executable: 'x', requirements: { cores: { min: -1 } } }]),
    );
    const invalid = await cli(['submit', bad], env);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /job #2: .*requirements\.cores\.min.*\[VALIDATION_FAILED\]/);
    assert.equal((await cli(['status', '999999'], env)).code, 4);
    assert.equal((await cli(['jobs'], { PILOTHOUSE_MATCHER: m.url })).code, 3, 'no token');
    assert.equal((await cli(['jobs'], { ...env, PILOTHOUSE_TOKEN_FILE: '', PILOTHOUSE_TOKEN: 'garbage' })).code, 3);
    const unreachable = await cli(['jobs', '--matcher', 'http://127.0.0.1:9'], env);
    assert.equal(unreachable.code, 5);
    assert.match(unreachable.stderr, /MATCHER_UNREACHABLE/);
    assert.equal((await cli(['jobs', '--status', 'Sleeping'], env)).code, 2);
    assert.equal((await cli(['submit'], env)).code, 2, 'missing argument is a usage error');
  });

  it('token issue mints a user token the matcher accepts, scoped to its owner', async () => {
    const issued = await cli([
      'token',
      'issue',
      '--data-dir',
      m.dataDir,
      '--kind',
      'user',
      '--vo',
      'vo-x',
      '--user',
      'dora',
    ]);
    assert.equal(issued.code, 0, issued.stderr);
    const token = issued.stdout.trim();
    const submitted = await m.api('POST', '/api/jobs', {
      token,
      json: { executable: 'true', requirements: { sites: ['Nowhere'] } },
    });
    assert.equal(submitted.status, 201);
    const job = (await m.api('GET', `/api/jobs/${submitted.body.jobIds[0]}`, { token })).body;
    assert.equal(job.owner, 'dora');
    assert.equal(job.vo, 'vo-x');
    const stranger = await cli(['token', 'issue', '--data-dir', m.dataDir, '--vo', 'vo-x', '--user', 'eve']);
    const peek = await m.api('GET', `/api/jobs/${submitted.body.jobIds[0]}`, { token: stranger.stdout.trim() });
    assert.equal(peek.status, 403, "a user cannot see another user's job");
    assert.equal(
      (await cli(['token', 'issue', '--data-dir', m.dataDir, '--vo', 'v'])).code,
      2,
      'user tokens need --user',
    );
  });

  it('server starts on a data directory, writes admin.token, and stops on SIGTERM', async () => {
    const dataDir = path.join(work, 'server-data');
    const { url, child } = await startServerProcess({ dataDir });
    const token = (await readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();
    const health = await fetch(`${url}/api/jobs/search`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(health.status, 200);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  });
});
