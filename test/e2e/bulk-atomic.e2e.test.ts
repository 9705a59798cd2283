/**
 * A 100,000-job parametric JDL is one transaction: the matcher process (dist/cli.mjs server on
 * SQLite) is SIGKILLed at several moments while it takes the submission (the last one while the
 * transaction's pages pour into the WAL), and each time, started again, it holds either all of that
 * submission's jobs or none of them. A last submission left alone lands whole.
 */
import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { restCall } from '../helpers/rest.ts';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

const JOBS = 100_000;
const JDL = `Executable = "/bin/echo"; Arguments = "%s"; Parameters = ${JOBS}; Site = "Nowhere.site";`;
let dir = '';
let server: ServerProcess | null = null;
after(async () => {
  server?.child.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function start(): Promise<{ url: string; token: string }> {
  server = await startServerProcess({ dataDir: path.join(dir, 'data') });
  const token = (await readFile(path.join(dir, 'data', 'admin.token'), 'utf8')).trim();
  return { url: server.url, token };
}

function submit(url: string, token: string): Promise<Response> {
  return fetch(`${url}/api/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'text/x-jdl' },
    body: JDL,
  });
}

async function total(url: string, token: string): Promise<number> {
  return (await restCall(url, token, 'POST', '/api/jobs/search', { perPage: 1 })).total as number;
}

it(
  `bulk - a ${JOBS.toLocaleString('en')}-job parametric submission killed midway is all there or not at all`,
  { timeout: 600_000 },
  async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ph-bulk-'));
    let { url, token } = await start();
    let stored = 0;
    const wal = path.join(dir, 'data', 'pilothouse.sqlite-wal');
    const walBytes = async () => (await stat(wal).catch(() => ({ size: 0 }))).size;
    const walWrittenAtMs = async () => (await stat(wal).catch(() => ({ mtimeMs: 0 }))).mtimeMs;
    /**
     * Resolves once the submission's pages are going to the WAL: the file grows by 1 MiB, or — when a
     * checkpoint left it large and SQLite rewrites it from its start — its modification time moves.
     * Bounded, so that a submission that never writes (a refusal) still gets killed and checked.
     */
    const walBeingWritten = async (baselineBytes: number, baselineMtimeMs: number): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        if ((await walBytes()) >= baselineBytes + 1024 * 1024) return;
        if ((await walWrittenAtMs()) > baselineMtimeMs) return;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    };
    // Kills at moments spread over the handling (reading, expanding, validating), and one while the
    // transaction's pages are being written to the WAL.
    for (const killAt of ['after 300 ms', 'after 1500 ms', 'after 3000 ms', 'after 4500 ms', 'while writing']) {
      const baseline = await walBytes();
      const baselineMtimeMs = await walWrittenAtMs();
      const answer = submit(url, token).catch(() => null);
      if (killAt === 'while writing') await walBeingWritten(baseline, baselineMtimeMs);
      else await new Promise((resolve) => setTimeout(resolve, Number(/\d+/.exec(killAt)?.[0])));
      const child = server!.child;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
      const answered = (await answer)?.status;
      ({ url, token } = await start());
      const now = await total(url, token);
      assert.ok(
        now === stored || now === stored + JOBS,
        `killed ${killAt}: ${now - stored} jobs of the submission stored`,
      );
      if (answered === 201) assert.equal(now, stored + JOBS, 'an acknowledged submission is all there');
      console.log(`# killed ${killAt}: ${now === stored ? 'none' : 'all'} of it stored (answer ${answered ?? 'none'})`);
      stored = now;
    }
    const startedAt = Date.now();
    const response = await submit(url, token);
    assert.equal(response.status, 201);
    console.log(`# ${JOBS} jobs submitted in ${Date.now() - startedAt} ms`);
    assert.equal(await total(url, token), stored + JOBS);
  },
);
