/**
 * `pilothouse backup` against a running matcher process that keeps storing bulk submissions while the
 * copy is taken: the copy passes its integrity check, holds whole submissions only (a consistent
 * snapshot), and a matcher started on it serves those jobs. Bad requests exit 2 and write nothing.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli-process.ts';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

const BATCH = 2_000;
let work: string;
let server: ServerProcess;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ph-backup-'));
  server = await startServerProcess({ dataDir: path.join(work, 'data') });
});
after(async () => {
  server.child.kill('SIGTERM');
  await once(server.child, 'exit').catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

async function api(url: string, token: string, method: string, route: string, body?: unknown) {
  const response = await fetch(`${url}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

it('copies the store consistently while submissions keep landing; a matcher starts on the copy', async () => {
  const token = (await readFile(path.join(work, 'data', 'admin.token'), 'utf8')).trim();
  const jobs = Array.from({ length: BATCH }, (_, n) => ({ executable: '/bin/true', arguments: [String(n)] }));
  const first = await api(server.url, token, 'POST', '/api/jobs', jobs);
  assert.equal(first.status, 201);
  let writing = true;
  const writer = (async () => {
    let batches = 1;
    while (writing) {
      const answer = await api(server.url, token, 'POST', '/api/jobs', jobs);
      assert.equal(answer.status, 201);
      batches += 1;
    }
    return batches;
  })();
  const copy = path.join(work, 'copy.sqlite');
  const result = await runCli(['backup', copy, '--data-dir', path.join(work, 'data'), '--json']);
  writing = false;
  const batches = await writer;
  assert.equal(result.code, 0, result.stderr);
  const answer = JSON.parse(result.stdout);
  assert.equal(answer.file, copy);
  assert.ok(answer.jobs >= BATCH && answer.jobs % BATCH === 0, `whole submissions only: ${answer.jobs}`);
  assert.ok(answer.jobs <= batches * BATCH);

  const restored = path.join(work, 'restored');
  await mkdir(restored);
  await copyFile(copy, path.join(restored, 'pilothouse.sqlite'));
  await copyFile(path.join(work, 'data', 'admin.token'), path.join(restored, 'admin.token'));
  await copyFile(path.join(work, 'data', 'cluster-id'), path.join(restored, 'cluster-id')).catch(() => undefined);
  const second = await startServerProcess({ dataDir: restored });
  try {
    const restoredToken = (await readFile(path.join(restored, 'admin.token'), 'utf8')).trim();
    const found = await api(second.url, restoredToken, 'POST', '/api/jobs/search', { perPage: 1 });
    assert.equal(found.body.total, answer.jobs, 'the restored matcher serves what the copy holds');
  } finally {
    second.child.kill('SIGTERM');
    await once(second.child, 'exit');
  }
});

it('refuses to overwrite a file, a PostgreSQL store and a missing store, with exit code 2', async () => {
  const existing = path.join(work, 'existing.sqlite');
  await writeFile(existing, 'keep me');
  const cases: [string[], RegExp][] = [
    [['backup', existing, '--data-dir', path.join(work, 'data')], /never written over/],
    [['backup', path.join(work, 'x.sqlite'), '--data-dir', work, '--db', 'postgres://u@h/db'], /pg_dump/],
    [['backup', path.join(work, 'y.sqlite'), '--data-dir', path.join(work, 'nowhere')], /no store at/],
  ];
  for (const [args, message] of cases) {
    const result = await runCli(args);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, message);
  }
  assert.equal(await readFile(existing, 'utf8'), 'keep me');
  assert.equal(existsSync(path.join(work, 'x.sqlite')) || existsSync(path.join(work, 'y.sqlite')), false);
});
