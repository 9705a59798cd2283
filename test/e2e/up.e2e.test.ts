/**
 * Black box: `pilothouse up` as a user runs it (dist/cli.mjs in a child process) brings up the matcher
 * and a site director with the local backend. Jobs submitted to it all end Done, run by pilots the
 * director sent (GET /api/pilots lists them, each with its status history), `site-director status`
 * explains the last cycle, and Ctrl-C (SIGINT) stops everything, pilots included.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { CLI, runCli } from '../helpers/cli-process.ts';
import { waitFor } from '../helpers/wait.ts';

let dataDir: string;
let child: ChildProcess;
let url: string;
let token: string;
let stderr = '';

before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'ph-up-'));
  child = spawn(
    process.execPath,
    [CLI, 'up', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--pilots', '2', '--cores-per-pilot', '1'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '', HOME: dataDir },
    },
  );
  let stdout = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  url = await new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /matcher (http:\/\/\S+);/.exec(stdout);
      if (match?.[1]) resolve(match[1]);
    });
    child.on('exit', (code) => reject(new Error(`up exited early (${code}): ${stdout}`)));
  });
  token = (await readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();
});

after(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  await rm(dataDir, { recursive: true, force: true });
});

const api = async (method: string, urlPath: string, body?: unknown): Promise<any> => {
  const response = await fetch(`${url}${urlPath}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response.json();
};

it('up - jobs end Done on pilots the local site director sent; their records have a history; Ctrl-C stops it all', async () => {
  const jobs = Array.from({ length: 6 }, (_, i) => ({
    name: `up-${i}`,
    executable: '/bin/sh',
    arguments: ['-c', `echo job ${i}`],
    requirements: { wallTimeSec: 600 },
  }));
  const { jobIds } = await api('POST', '/api/jobs', jobs);
  assert.equal(jobIds.length, 6);
  await waitFor(
    async () => {
      const found = await api('POST', '/api/jobs/search', { ids: jobIds });
      return found.jobs.every((job: { status: string }) => job.status === 'Done') || undefined;
    },
    'every job Done',
    90_000,
  );
  const { pilots } = await api('GET', '/api/pilots');
  assert.ok(pilots.length >= 1 && pilots.length <= 6, `${pilots.length} pilot(s)`);
  const jobsRun = pilots.reduce((sum: number, p: { jobsMatched: number }) => sum + p.jobsMatched, 0);
  assert.equal(jobsRun, 6, 'the director’s pilots ran every job');
  for (const pilot of pilots) {
    assert.equal(pilot.director, 'local');
    assert.equal(pilot.backend, 'local');
    const detail = await api('GET', `/api/pilots/${pilot.id}`);
    assert.equal(detail.history[0].status, 'Submitted');
    assert.ok(
      detail.history.some((h: { status: string; source: string }) => h.status === 'Running' && h.source === 'pilot'),
    );
  }
  const status = await runCli(['site-director', 'status', '--matcher', url, '--json'], { PILOTHOUSE_TOKEN: token });
  assert.equal(status.code, 0, status.stderr);
  const report = JSON.parse(status.stdout).directors[0].report;
  assert.equal(report.director, 'local');
  assert.equal(report.queues[0].queue, 'local');
  const listed = await runCli(['pilots', '--matcher', url], { PILOTHOUSE_TOKEN: token });
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /local:/);

  child.kill('SIGINT');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0, stderr);
  // No pilot of this data directory outlives `up` (their cancel watchers end within a second).
  await waitFor(
    async () => (await execa('pgrep', ['-f', dataDir], { reject: false })).stdout.trim() === '' || undefined,
    'no process of the data directory left',
    5_000,
  );
});
