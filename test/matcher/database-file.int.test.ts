/**
 * The SQLite file under a running matcher, removed or replaced by another file: noticed within the
 * guard's interval (/healthz turns 503 STORE_UNAVAILABLE naming the file), writes refused from then on
 * instead of landing in a file nobody will open again, reads going on; the file put back, writes
 * resume. A database on a read-only file system is refused at open, naming the file (the test mounts
 * its own tmpfs, as root like CI).
 * Linux will not turn a file system read-only while a process writes to it (remount says busy), so a
 * file system failing under a running matcher is the disk-full case of store-faults.int.test.ts: the
 * same SQLite result codes, the same STORE_UNAVAILABLE.
 */
import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rename, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../shared/logger.ts';
import { openSqliteConnection } from '../../matcher/store/sqlite/open-database.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';
import { waitFor } from '../helpers/wait.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

async function matcherWithLog(dataDir?: string): Promise<{ m: TestMatcher; logs: Record<string, unknown>[] }> {
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    component: 'matcher',
    level: 'warn',
    destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const m = await startTestMatcher({ logger, ...(dataDir && { dataDir }) });
  cleanups.push(() => m.close());
  return { m, logs };
}

const submit = (m: TestMatcher, name: string) =>
  m.api('POST', '/api/jobs', { json: { name, executable: 'sleep', arguments: ['600'] } });

async function unhealthy(m: TestMatcher): Promise<{ code: string; message: string }> {
  return waitFor(async () => {
    const health = await fetch(`${m.url}/healthz`);
    const body = (await health.json()) as { error?: { code: string; message: string } };
    return health.status === 503 ? body.error : undefined;
  }, '/healthz to report the lost file');
}

for (const [how, lose] of [
  ['removed', (file: string) => unlink(file)],
  [
    'replaced',
    async (file: string) => {
      await copyFile(file, `${file}.copy`);
      await rename(`${file}.copy`, file);
    },
  ],
] as const) {
  it(`database file ${how} while open - noticed, writes refused with 503 and nothing lost silently, reads go on`, async () => {
    const { m, logs } = await matcherWithLog();
    const before = await submit(m, 'before');
    assert.equal(before.status, 201);
    const pilot = await RawPilot.connect(m.url, await m.pilotToken('local'), { stamp: `pilot-${how}` });
    cleanups.push(() => pilot.close());
    pilot.send({ type: 'offer', offerId: 'o', matchSeq: 0, resources: resources() });
    const { job } = await pilot.next('match');

    const file = path.join(m.dataDir, 'pilothouse.sqlite');
    await lose(file);
    const fault = await unhealthy(m);
    assert.equal(fault.code, 'STORE_UNAVAILABLE');
    assert.match(fault.message, new RegExp(`${file}.*${how}`));

    const after = await submit(m, 'after');
    assert.equal(after.status, 503, JSON.stringify(after.body));
    assert.equal(after.body.error.code, 'STORE_UNAVAILABLE');
    pilot.send({
      type: 'job.status',
      ref: 1,
      jobId: job.jobId,
      attempt: job.attempt,
      status: 'Running',
      at: new Date().toISOString(),
    });
    assert.equal((await pilot.next('error')).code, 'STORE_UNAVAILABLE', 'the report is refused, to be replayed');
    const read = await m.api('GET', `/api/jobs/${before.body.jobIds[0]}`);
    assert.deepEqual([read.status, read.body.status], [200, 'Matched'], 'reads still work');
    const told = logs.filter((line) => String(line.msg).startsWith('database file removed or replaced'));
    assert.equal(told.length, 1, 'the operator is told once');
    assert.equal(told[0]?.reason, how);
  });
}

/** A tmpfs of the test's own, to turn read-only. */
async function tmpfs(): Promise<string> {
  const mountPoint = await mkdtemp(path.join(os.tmpdir(), 'ph-rofs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mountPoint]);
  cleanups.push(async () => {
    execFileSync('umount', ['-l', mountPoint]);
    await rm(mountPoint, { recursive: true, force: true });
  });
  return mountPoint;
}

it('database on a read-only file system at start - refused at once with STORE_UNAVAILABLE naming the file', async () => {
  const mountPoint = await tmpfs();
  const dir = path.join(mountPoint, 'data');
  await mkdir(dir);
  openSqliteConnection({ path: path.join(dir, 'pilothouse.sqlite') }).close();
  execFileSync('mount', ['-o', 'remount,ro', mountPoint]);
  assert.throws(
    () => openSqliteConnection({ path: path.join(dir, 'pilothouse.sqlite') }),
    (error: Error & { code?: string }) =>
      error.code === 'STORE_UNAVAILABLE' && error.message.includes(path.join(dir, 'pilothouse.sqlite')),
  );
});

it('database file moved away and back - writes refused meanwhile, taken again once it is back, by the same matcher', async () => {
  const { m, logs } = await matcherWithLog();
  const file = path.join(m.dataDir, 'pilothouse.sqlite');
  await rename(file, `${file}.moved`);
  await unhealthy(m);
  assert.equal((await submit(m, 'while away')).status, 503);
  await rename(`${file}.moved`, file);
  await waitFor(async () => (await fetch(`${m.url}/healthz`)).status === 200, '/healthz ok again');
  const back = await submit(m, 'back');
  assert.equal(back.status, 201, JSON.stringify(back.body));
  const names = (await m.api('POST', '/api/jobs/search', { json: {} })).body.jobs.map(
    (job: { name: string }) => job.name,
  );
  assert.deepEqual(names, ['back'], 'the refused submission left nothing behind');
  assert.ok(logs.some((line) => line.msg === 'database file back where it was: writes resume'));
});
