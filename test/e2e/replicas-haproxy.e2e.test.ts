/**
 * Three matcher processes (`dist/cli.mjs server --db postgres://…`, one data directory for their keys
 * and sandboxes, their own task-queue refresh set to a minute so that only LISTEN/NOTIFY explains a
 * prompt wake-up) behind a real HAProxy with health checks; five real pilots and the submissions go
 * through the load balancer, so pilots and requests are spread over the replicas.
 *
 *  1. 1,000 jobs; once a third are Done, the replica holding the most pilots is SIGKILLed. Every job is
 *     Done exactly once (marker files counted) and that replica's pilots carry on through the others.
 *  2. A job submitted through one replica is pushed to a pilot parked on another (the figure is
 *     printed; BENCHMARKS.md has the measured latency).
 *  3. A kill through one replica stops the job on a pilot connected to another: Killed, and its
 *     process gone.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { runCli } from '../helpers/cli-process.ts';
import { dropSchema, freshSchemaName, PG_TEST_URL } from '../helpers/postgres.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { startServerProcess } from '../helpers/server-process.ts';
import { freePort } from '../helpers/ports.ts';
import { restCall } from '../helpers/rest.ts';
import { waitFor } from '../helpers/wait.ts';

let dir: string;
let schema: string;
const children: ChildProcess[] = [];
const pilots: PilotProcess[] = [];

after(async () => {
  await Promise.all(pilots.map((p) => p.stop()));
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await dropSchema(schema);
  await rm(dir, { recursive: true, force: true });
});

interface Replica {
  url: string;
  id: string;
  child: ChildProcess;
}

async function startReplica(dataDir: string, db: string): Promise<Replica> {
  const server = await startServerProcess({ dataDir, db, args: ['--task-queue-refresh-sec', '60'] });
  children.push(server.child);
  const health = (await (await fetch(`${server.url}/healthz`)).json()) as { replica: string };
  return { url: server.url, id: health.replica, child: server.child };
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

let lb: string;
let token: string;
let replicas: Replica[];
let markers: string;
const PROBE_TAG = 'probe';
const PROBE_STAMP = 'probe-pilot';

async function api(base: string, method: string, route: string, json?: unknown): Promise<any> {
  return restCall(base, token, method, route, json);
}

/** pilot id → the replica holding it, from the presence table every replica writes. */
async function holders(): Promise<Map<string, string>> {
  const client = new pg.Client({ connectionString: PG_TEST_URL });
  await client.connect();
  try {
    const rows = await client.query(`SELECT pilot_id, replica_id FROM ${schema}.pilot_presence`);
    return new Map(rows.rows.map((row: { pilot_id: string; replica_id: string }) => [row.pilot_id, row.replica_id]));
  } finally {
    await client.end();
  }
}

async function countDone(): Promise<number | undefined> {
  // During a failover the load balancer may answer 503 for a moment: that is not an answer.
  const body = await api(lb, 'POST', '/api/jobs/search', { status: ['Done'], perPage: 1 }).catch(() => undefined);
  return body?.total;
}

function alive(): Replica[] {
  return replicas.filter((replica) => replica.child.exitCode === null && replica.child.signalCode === null);
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ph-haproxy-'));
  schema = freshSchemaName();
  const dataDir = path.join(dir, 'data');
  const db = `${PG_TEST_URL}?schema=${schema}`;
  replicas = [await startReplica(dataDir, db), await startReplica(dataDir, db), await startReplica(dataDir, db)];
  const port = await freePort();
  const config = path.join(dir, 'haproxy.cfg');
  await writeFile(
    config,
    haproxyConfig(
      port,
      replicas.map((r) => r.url),
    ),
  );
  const haproxy = spawn('haproxy', ['-f', config, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(haproxy);
  lb = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => (await fetch(`${lb}/healthz`).catch(() => null))?.status === 200 || undefined,
    'HAProxy up',
    20_000,
  );
  token = (await readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();
  const pilotToken = (
    await runCli(['token', 'issue', '--data-dir', dataDir, '--kind', 'pilot', '--vo', 'local'])
  ).stdout.trim();
  markers = path.join(dir, 'markers');
  await mkdir(markers);
  for (let i = 0; i < 5; i += 1) {
    const tags = i === 0 ? ['--tags', PROBE_TAG, '--stamp', PROBE_STAMP] : [];
    pilots.push(
      await spawnPilot({
        matcherUrl: lb,
        token: pilotToken,
        // Payloads write marker files in the test's directory: no container.
        args: [
          ...['--cores', '2', '--idle-timeout-sec', '600', '--drain-file', 'none', '--log-level', 'warn'],
          ...['--isolation', 'none', ...tags],
        ],
      }),
    );
  }
  await waitFor(async () => ((await holders()).size === 5 ? true : undefined), 'five pilots connected');
});

it(
  'replicas behind HAProxy - 1,000 jobs, one replica SIGKILLed mid-run: each Done exactly once, its pilots carry on',
  { timeout: 300_000 },
  async () => {
    const jobs = Array.from({ length: 1000 }, (_, n) => ({
      name: `lb-${n}`,
      executable: '/bin/sh',
      arguments: ['-c', `sleep 0.1; echo "$PILOTHOUSE_PILOT_STAMP $(date +%s%3N)" >> ${markers}/$PILOTHOUSE_JOB_ID`],
      requirements: { wallTimeSec: 600 },
    }));
    const ids = (await api(lb, 'POST', '/api/jobs', jobs)).jobIds as number[];
    assert.equal(ids.length, 1000);

    await waitFor(async () => ((await countDone()) ?? 0) >= 300 || undefined, 'a third of the jobs Done', 120_000);
    const held = await holders();
    const load = (replica: Replica) => [...held.values()].filter((id) => id === replica.id).length;
    const victim = [...replicas].sort((a, b) => load(b) - load(a))[0] as Replica;
    const orphans = [...held].filter(([, replicaId]) => replicaId === victim.id).map(([pilotId]) => pilotId);
    assert.ok(orphans.length > 0, 'the replica to kill holds pilots');
    const killedAtMs = Date.now();
    victim.child.kill('SIGKILL');

    const done = await waitFor(
      async () => ((await countDone()) === ids.length ? ids.length : undefined),
      'every job Done',
      240_000,
    );
    assert.equal(done, 1000);
    const files = await readdir(markers);
    assert.equal(files.length, 1000);
    const ranAfterKill = new Set<string>();
    for (const file of files) {
      const lines = (await readFile(path.join(markers, file), 'utf8')).trim().split('\n');
      assert.equal(lines.length, 1, `job ${file} ran once`);
      const [stamp, atMs] = (lines[0] as string).split(' ');
      if (Number(atMs) > killedAtMs) ranAfterKill.add(stamp as string);
    }
    // The killed replica's pilots reconnected through the load balancer and kept running jobs.
    const after = await holders();
    for (const pilotId of orphans) {
      assert.ok(ranAfterKill.has(pilotId), `pilot ${pilotId} ran jobs after its replica was killed`);
      assert.notEqual(after.get(pilotId), victim.id);
    }
    const live = new Set(alive().map((r) => r.id));
    for (const replicaId of after.values()) assert.ok(live.has(replicaId), 'every pilot is held by a live replica');
  },
);

/** The probe pilot (the only one offering PROBE_TAG), the replica holding it and a live one that does not. */
async function probeAndOtherReplica(): Promise<{ holder: Replica; other: Replica }> {
  const holderId = (await holders()).get(PROBE_STAMP);
  const holder = alive().find((r) => r.id === holderId);
  const other = alive().find((r) => r.id !== holderId);
  assert.ok(holder && other, 'the probe pilot is on a live replica and another one is alive');
  return { holder, other };
}

it('replicas behind HAProxy - a job submitted through one replica is pushed to a pilot parked on another', async (t) => {
  const { other } = await probeAndOtherReplica();
  const [jobId] = (
    await api(other.url, 'POST', '/api/jobs', {
      executable: '/bin/true',
      requirements: { tags: [PROBE_TAG] },
    })
  ).jobIds as number[];
  const job = await waitFor(async () => {
    const view = await api(other.url, 'GET', `/api/jobs/${jobId}`);
    return view.status === 'Done' ? view : undefined;
  }, 'the probe job Done');
  const history = job.history as { status: string; at: string }[];
  const waitingAt = Date.parse(history.find((h) => h.status === 'Waiting')?.at ?? '');
  const matchedAt = Date.parse(history.find((h) => h.status === 'Matched')?.at ?? '');
  const latencyMs = matchedAt - waitingAt;
  t.diagnostic(`submit through one replica → match on another: ${latencyMs} ms`);
  // Each replica re-reads task queues only once a minute here: only the NOTIFY can explain this.
  assert.ok(latencyMs >= 0 && latencyMs < 2_000, `matched ${latencyMs} ms after it was Waiting`);
});

it('replicas behind HAProxy - a kill through one replica stops the job on a pilot connected to another', async () => {
  const { holder, other } = await probeAndOtherReplica();
  const pidFile = path.join(dir, 'probe.pid');
  const [jobId] = (
    await api(other.url, 'POST', '/api/jobs', {
      executable: '/bin/sh',
      arguments: ['-c', `echo $$ > ${pidFile}; exec sleep 300`],
      requirements: { tags: [PROBE_TAG] },
    })
  ).jobIds as number[];
  const pid = await waitFor(async () => {
    const text = await readFile(pidFile, 'utf8').catch(() => '');
    return text.trim() === '' ? undefined : Number(text.trim());
  }, 'the probe job started');
  await waitFor(
    async () => (await api(holder.url, 'GET', `/api/jobs/${jobId}`)).status === 'Running' || undefined,
    'the probe job Running',
  );
  const killed = await api(other.url, 'POST', `/api/jobs/${jobId}/kill`);
  assert.equal(killed.status, 'Killed');
  await waitFor(() => {
    try {
      process.kill(pid, 0);
      return Promise.resolve(undefined);
    } catch {
      return Promise.resolve(true);
    }
  }, `the payload (pid ${pid}) gone`);
  assert.equal((await api(holder.url, 'GET', `/api/jobs/${jobId}`)).status, 'Killed');
});
