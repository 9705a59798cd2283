/**
 * The matcher on PostgreSQL, black box: `pilothouse server --db postgres://…` processes (dist/cli.mjs)
 * with real pilots. Two servers on one database (sharing one data directory for their keys and
 * sandboxes) each take submissions and serve a pilot: 100 jobs, each Done exactly once (marker files
 * counted), both pilots busy. A database that cannot be reached or does not exist is a clear error at
 * start (no stack trace). On SQLite, a second matcher on the same file is refused. A pilot and the CLI
 * given several matcher URLs move past one that is down.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli-process.ts';
import { dropSchema, freshSchemaName, PG_TEST_URL } from '../helpers/postgres.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { startServerProcess } from '../helpers/server-process.ts';
import { waitFor } from '../helpers/wait.ts';

let dir: string;
let schema: string;
const servers: ChildProcess[] = [];
const pilots: PilotProcess[] = [];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ph-pg-e2e-'));
  schema = freshSchemaName();
});
after(async () => {
  await Promise.all(pilots.map((p) => p.stop()));
  for (const server of servers) if (server.exitCode === null) server.kill('SIGKILL');
  await dropSchema(schema);
  await rm(dir, { recursive: true, force: true });
});

async function startServer(dataDir: string, db: string): Promise<string> {
  const server = await startServerProcess({ dataDir, db });
  servers.push(server.child);
  return server.url;
}

it('postgres - two servers on one database share 100 jobs from two pilots: each Done exactly once', async () => {
  const dataDir = path.join(dir, 'shared-data');
  const db = `${PG_TEST_URL}?schema=${schema}`;
  const urlA = await startServer(dataDir, db);
  const urlB = await startServer(dataDir, db);
  const token = (await readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();
  const pilotToken = (
    await runCli(['token', 'issue', '--data-dir', dataDir, '--kind', 'pilot', '--vo', 'local'])
  ).stdout.trim();
  const markers = path.join(dir, 'markers');
  await mkdir(markers);
  for (const url of [urlA, urlB]) {
    pilots.push(
      await spawnPilot({
        matcherUrl: url,
        token: pilotToken,
        // Payloads write marker files in the test's directory: no container.
        args: ['--cores', '2', '--idle-timeout-sec', '120', '--drain-file', 'none', '--isolation', 'none'],
      }),
    );
  }
  const job = (n: number) => ({
    name: `shared-${n}`,
    executable: '/bin/sh',
    arguments: ['-c', `echo "$PILOTHOUSE_JOB_ID" >> ${markers}/$PILOTHOUSE_JOB_ID`],
    requirements: { wallTimeSec: 600 },
  });
  // Half through each server: both push to their own parked pilot at once, and claim from the same TQ.
  const submit = async (url: string, from: number) => {
    const response = await fetch(`${url}/api/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(Array.from({ length: 50 }, (_, i) => job(from + i))),
    });
    assert.equal(response.status, 201);
    return ((await response.json()) as { jobIds: number[] }).jobIds;
  };
  const ids = [...(await submit(urlA, 0)), ...(await submit(urlB, 50))];
  assert.equal(new Set(ids).size, 100);
  const jobs = await waitFor(
    async () => {
      const response = await fetch(`${urlB}/api/jobs/search`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ids, perPage: 100 }),
      });
      const body = (await response.json()) as { jobs: { status: string; pilotId: string }[] };
      return body.jobs.every((j) => j.status === 'Done') ? body.jobs : undefined;
    },
    'every job Done',
    120_000,
  );
  const files = await readdir(markers);
  assert.equal(files.length, 100);
  for (const file of files)
    assert.equal(
      (await readFile(path.join(markers, file), 'utf8')).trim().split('\n').length,
      1,
      `job ${file} ran once`,
    );
  const pilotsUsed = new Set(jobs.map((j) => j.pilotId));
  assert.equal(pilotsUsed.size, 2, 'both pilots, on both servers, ran jobs');
});

it('postgres - an unreachable database or one that does not exist is a clear error at start', async () => {
  const down = await runCli([
    'server',
    '--data-dir',
    path.join(dir, 'down'),
    '--listen',
    '127.0.0.1:0',
    '--db',
    'postgres://postgres@127.0.0.1:1/test',
  ]);
  assert.equal(down.code, 5);
  assert.match(down.stderr, /^pilothouse: the database is unavailable: .*ECONNREFUSED.* \[STORE_UNAVAILABLE\]\n$/);
  const missing = await runCli([
    'server',
    '--data-dir',
    path.join(dir, 'missing'),
    '--listen',
    '127.0.0.1:0',
    '--db',
    'postgres://postgres@127.0.0.1:5432/no_such_db',
  ]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /database "no_such_db" does not exist \[CONFIG_INVALID\]/);
  assert.doesNotMatch(`${down.stderr}${missing.stderr}`, /\n\s+at /, 'no stack trace');
  const bad = await runCli(['server', '--data-dir', path.join(dir, 'bad'), '--db', 'mysql://x']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--db mysql:\/\/x: expected sqlite:PATH or postgres:/);
});

it('sqlite - a second matcher on the same file is refused at start', async () => {
  const dataDir = path.join(dir, 'sqlite-data');
  await startServer(dataDir, `sqlite:${path.join(dataDir, 'one.sqlite')}`);
  const second = await runCli([
    'server',
    '--data-dir',
    dataDir,
    '--listen',
    '127.0.0.1:0',
    '--db',
    `sqlite:${path.join(dataDir, 'one.sqlite')}`,
  ]);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /is in use by process \d+: one matcher per SQLite file .* \[STORE_IN_USE\]/);
  // Once the first one stops (even by SIGKILL), the file is free again.
  const first = servers.at(-1) as ChildProcess;
  first.kill('SIGKILL');
  await once(first, 'exit');
  await startServer(dataDir, `sqlite:${path.join(dataDir, 'one.sqlite')}`);
});

it('failover - a pilot and the CLI given several matcher URLs use the next when one is unreachable', async () => {
  const dataDir = path.join(dir, 'failover-data');
  const url = await startServer(dataDir, `sqlite:${path.join(dataDir, 'failover.sqlite')}`);
  const dead = 'http://127.0.0.1:1';
  const token = (await readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();
  const jobFile = path.join(dir, 'failover-job.json');
  await writeFile(jobFile, JSON.stringify({ executable: '/bin/true', requirements: { wallTimeSec: 600 } }));
  const submit = await runCli(['submit', jobFile, '--matcher', `${dead},${url}`, '--json'], {
    PILOTHOUSE_TOKEN: token,
  });
  assert.equal(submit.code, 0, submit.stderr);
  const [jobId] = JSON.parse(submit.stdout).jobIds as number[];
  const pilotToken = (
    await runCli(['token', 'issue', '--data-dir', dataDir, '--kind', 'pilot', '--vo', 'local'])
  ).stdout.trim();
  pilots.push(
    await spawnPilot({
      matcherUrl: `${dead},${url}`,
      token: pilotToken,
      args: ['--idle-timeout-sec', '30', '--drain-file', 'none'],
    }),
  );
  await waitFor(
    async () => {
      const status = await runCli(['status', String(jobId), '--matcher', `${dead},${url}`, '--json'], {
        PILOTHOUSE_TOKEN: token,
      });
      return status.code === 0 && JSON.parse(status.stdout).status === 'Done' ? true : undefined;
    },
    'the job Done through the second URL',
    60_000,
  );
});
