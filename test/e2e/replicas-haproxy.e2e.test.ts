/**
 * Three matcher processes (`dist/cli.mjs server --db postgres://…`, one data directory for their keys
 * and sandboxes) behind a real HAProxy with health checks; four real pilots and the submissions all go
 * through the load balancer, so pilots and requests are spread over the replicas. 1,000 jobs: every
 * one Done, each exactly once (marker files counted).
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { runCli } from '../helpers/cli-process.ts';
import { dropSchema, freshSchemaName, PG_TEST_URL } from '../helpers/postgres.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { startServerProcess } from '../helpers/server-process.ts';
import { waitFor } from '../helpers/wait.ts';

let dir: string;
let schema: string;
const children: ChildProcess[] = [];
const pilots: PilotProcess[] = [];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ph-haproxy-'));
  schema = freshSchemaName();
});
after(async () => {
  await Promise.all(pilots.map((p) => p.stop()));
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await dropSchema(schema);
  await rm(dir, { recursive: true, force: true });
});

async function startServer(dataDir: string, db: string): Promise<string> {
  const server = await startServerProcess({ dataDir, db });
  children.push(server.child);
  return server.url;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The documented HAProxy setup (docs/replicas.md): WebSockets tunnel through, /healthz decides. */
function haproxyConfig(port: number, backends: string[]): string {
  return `global
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  retries 3
  option redispatch
frontend matchers
  bind 127.0.0.1:${port}
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
  default-server inter 500ms fall 2 rise 1
${backends.map((url, i) => `  server m${i + 1} ${new URL(url).host} check`).join('\n')}
`;
}

it(
  'replicas behind HAProxy - 1,000 jobs from four pilots over three matchers, each Done exactly once',
  { timeout: 300_000 },
  async () => {
    const dataDir = path.join(dir, 'data');
    const db = `${PG_TEST_URL}?schema=${schema}`;
    const replicas = [await startServer(dataDir, db), await startServer(dataDir, db), await startServer(dataDir, db)];
    const port = await freePort();
    const config = path.join(dir, 'haproxy.cfg');
    await writeFile(config, haproxyConfig(port, replicas));
    const haproxy = spawn('haproxy', ['-f', config, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(haproxy);
    const lb = `http://127.0.0.1:${port}`;
    await waitFor(
      async () => (await fetch(`${lb}/healthz`).catch(() => null))?.status === 200 || undefined,
      'HAProxy up',
      20_000,
    );

    const token = (await readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();
    const pilotToken = (
      await runCli(['token', 'issue', '--data-dir', dataDir, '--kind', 'pilot', '--vo', 'local'])
    ).stdout.trim();
    const markers = path.join(dir, 'markers');
    await mkdir(markers);
    for (let i = 0; i < 4; i += 1) {
      pilots.push(
        await spawnPilot({
          matcherUrl: lb,
          token: pilotToken,
          args: ['--cores', '2', '--idle-timeout-sec', '300', '--drain-file', 'none', '--log-level', 'warn'],
        }),
      );
    }
    const jobs = Array.from({ length: 1000 }, (_, n) => ({
      name: `lb-${n}`,
      executable: '/bin/sh',
      arguments: ['-c', `echo "$PILOTHOUSE_JOB_ID" >> ${markers}/$PILOTHOUSE_JOB_ID`],
      requirements: { wallTimeSec: 600 },
    }));
    const submitted = await fetch(`${lb}/api/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(jobs),
    });
    assert.equal(submitted.status, 201);
    const ids = ((await submitted.json()) as { jobIds: number[] }).jobIds;

    const done = await waitFor(
      async () => {
        const response = await fetch(`${lb}/api/jobs/search`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ status: ['Done'], perPage: 1 }),
        });
        const body = (await response.json()) as { total: number };
        return body.total === ids.length ? body.total : undefined;
      },
      'every job Done',
      240_000,
    );
    assert.equal(done, 1000);
    const files = await readdir(markers);
    assert.equal(files.length, 1000);
    for (const file of files) {
      assert.equal(
        (await readFile(path.join(markers, file), 'utf8')).trim().split('\n').length,
        1,
        `job ${file} ran once`,
      );
    }
    // The load balancer spread the pilots over the replicas (the presence table says which holds which).
    const client = new pg.Client({ connectionString: PG_TEST_URL });
    await client.connect();
    try {
      const holders = await client.query(`SELECT count(DISTINCT replica_id) AS n FROM ${schema}.pilot_presence`);
      assert.ok(Number(holders.rows[0].n) >= 2, `pilots held by ${holders.rows[0].n} replica(s)`);
    } finally {
      await client.end();
    }
  },
);
