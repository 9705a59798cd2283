/**
 * The database restarted under load: a matcher process (`dist/cli.mjs server`) on a PostgreSQL server
 * of the test's own, three real pilots running 400 short jobs; once a fifth are Done the server is
 * restarted (`pg_ctl restart -m fast`, which cuts every connection). The matcher keeps running, the
 * pilots are told STORE_UNAVAILABLE (retryable) and replay, and every job is Done, its payload run
 * exactly once (a marker line per run).
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli-process.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres.ts';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { restCall } from '../helpers/rest.ts';
import { waitFor } from '../helpers/wait.ts';

let dir: string;
let postgres: PrivatePostgres;
let server: ServerProcess;
let token: string;
const pilots: PilotProcess[] = [];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ph-pg-restart-'));
  postgres = await startPrivatePostgres();
  const dataDir = path.join(dir, 'data');
  server = await startServerProcess({ dataDir, db: postgres.url });
  token = (await readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();
  const pilotToken = (
    await runCli(['token', 'issue', '--data-dir', dataDir, '--kind', 'pilot', '--vo', 'local'])
  ).stdout.trim();
  for (let i = 0; i < 3; i += 1) {
    pilots.push(
      await spawnPilot({
        matcherUrl: server.url,
        token: pilotToken,
        // The payloads append marker lines to a file of the test: no container.
        args: ['--cores', '2', '--idle-timeout-sec', '600', '--drain-file', 'none', '--log-level', 'warn'].concat([
          '--isolation',
          'none',
        ]),
      }),
    );
  }
});

after(async () => {
  await Promise.all(pilots.map((p) => p.stop()));
  if (server?.child.exitCode === null) server.child.kill('SIGKILL');
  await postgres?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function api(method: string, route: string, json?: unknown): Promise<any> {
  return restCall(server.url, token, method, route, json);
}

/** Done jobs, or undefined while the database is away (a 503 is not an answer). */
async function countDone(): Promise<number | undefined> {
  const body = await api('POST', '/api/jobs/search', { status: ['Done'], perPage: 1 }).catch(() => undefined);
  return body?.total;
}

it(
  'PostgreSQL restarted under load - the matcher carries on, every job Done, each payload run once',
  { timeout: 300_000 },
  async () => {
    const markers = path.join(dir, 'markers');
    await mkdir(markers);
    const jobs = Array.from({ length: 400 }, (_, n) => ({
      name: `restart-${n}`,
      executable: '/bin/sh',
      arguments: ['-c', `sleep 0.05; echo "$PILOTHOUSE_PILOT_STAMP" >> ${markers}/$PILOTHOUSE_JOB_ID`],
      requirements: { wallTimeSec: 600 },
    }));
    const ids = (await api('POST', '/api/jobs', jobs)).jobIds as number[];
    await waitFor(async () => ((await countDone()) ?? 0) >= 80 || undefined, 'a fifth of the jobs Done', 120_000);

    await postgres.restart();

    await waitFor(async () => (await countDone()) === ids.length || undefined, 'every job Done', 240_000).catch(
      async (error: unknown) => {
        const page = await api('POST', '/api/jobs/search', { perPage: 1000 }).catch(() => ({ jobs: [] }));
        const byStatus: Record<string, number> = {};
        for (const job of page.jobs as { status: string }[]) byStatus[job.status] = (byStatus[job.status] ?? 0) + 1;
        console.log(JSON.stringify(byStatus));
        console.log(server.log().slice(-6000));
        for (const pilot of pilots) console.log(pilot.log().slice(-3000));
        throw error;
      },
    );
    assert.equal(server.child.exitCode, null, 'the matcher is still running');
    const files = await readdir(markers);
    assert.equal(files.length, ids.length, 'every payload ran');
    for (const file of files) {
      const runs = (await readFile(path.join(markers, file), 'utf8')).trim().split('\n');
      assert.equal(runs.length, 1, `job ${file} ran ${runs.length} times`);
    }
    const page = await api('POST', '/api/jobs/search', { perPage: 1000 });
    const retried = (page.jobs as { attempt: number }[]).filter((job) => job.attempt > 1).length;
    console.log(`# ${retried} of ${ids.length} jobs needed a second attempt (a match lost with the connection)`);
    const told = pilots.map((p) => p.log()).join('\n') + server.log();
    assert.match(told, /STORE_UNAVAILABLE/, 'the outage was reported as the retryable STORE_UNAVAILABLE');
    assert.doesNotMatch(told, /report dropped/, 'no report was given up');
  },
);
