/**
 * A full disk under a real matcher: its data directory is a 4 MiB tmpfs (mounted by the test, which
 * runs as root like CI). Submissions fill it until SQLite cannot write: from then on each answers 503
 * STORE_UNAVAILABLE (retryable), never a 500, and the refused submission left no job behind; a pilot's
 * report is refused the same way. Once the filesystem grows, the same matcher takes submissions and the
 * replayed report again by itself, and the store invariants hold.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { checkInvariants, readSnapshot } from '../../matcher/store/invariants.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

let mountPoint: string;
let m: TestMatcher;
const rest = () => path.join(mountPoint, 'rest');

/** Takes every byte left on the filesystem, so that even the smallest write fails. */
async function fillUp(): Promise<void> {
  const chunk = Buffer.alloc(4096, 2);
  const handle = await open(rest(), 'a');
  try {
    for (;;) await handle.write(chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    await handle.close();
  }
}

before(async () => {
  mountPoint = await mkdtemp(path.join(os.tmpdir(), 'ph-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint]);
  m = await startTestMatcher({ dataDir: path.join(mountPoint, 'data') });
});
after(async () => {
  await m?.close().catch(() => undefined);
  execFileSync('umount', ['-l', mountPoint]);
  await rm(mountPoint, { recursive: true, force: true });
});

it('disk full - submissions and pilot reports get STORE_UNAVAILABLE with nothing half-written, and succeed again once space is back', async () => {
  // A pilot holding a job, from before the disk filled.
  const held = await m.api('POST', '/api/jobs', { json: { name: 'held', executable: '/bin/true' } });
  const pilot = await RawPilot.connect(m.url, await m.pilotToken('local'), { stamp: 'on-full-disk' });
  pilot.send({ type: 'offer', offerId: 'o', matchSeq: 0, resources: resources() });
  const { job } = await pilot.next('match');
  assert.equal(job.jobId, held.body.jobIds[0]);
  const running = (ref: number) => ({
    type: 'job.status' as const,
    ref,
    jobId: job.jobId,
    attempt: job.attempt,
    status: 'Running' as const,
    minorStatus: `step ${ref}`,
    at: new Date().toISOString(),
  });

  const batch = (n: number) =>
    Array.from({ length: 50 }, (_, i) => ({
      name: `fill-${n}-${i}`,
      executable: '/bin/true',
      arguments: ['x'.repeat(2000)],
    }));
  let accepted = 0;
  let refused: { status: number; body: any } | null = null;
  for (let n = 0; n < 200 && refused === null; n += 1) {
    const response = await m.api('POST', '/api/jobs', { json: batch(n) });
    if (response.status === 201) accepted += (response.body.jobIds as number[]).length;
    else refused = response;
  }
  assert.ok(refused !== null, 'the disk filled up');
  assert.equal(refused.status, 503, JSON.stringify(refused.body));
  assert.equal(refused.body.error.code, 'STORE_UNAVAILABLE');
  assert.equal(refused.body.error.retryable, true);
  // Reads still work, and the refused submission stored none of its 50 jobs.
  const total = async () => (await m.api('POST', '/api/jobs/search', { json: { perPage: 1 } })).body.total as number;
  assert.equal(await total(), accepted + 1);
  // The refused batch was large; what room is left could still take a small write. Take it too. (A
  // small write may still fit in WAL pages SQLite reuses, so reports go until the store refuses one.)
  await fillUp();
  let ref = 0;
  let report: Awaited<ReturnType<typeof pilot.next<'error' | 'ack'>>>;
  do {
    pilot.send(running(++ref));
    report = await pilot.next('error', 'ack');
  } while (report.type === 'ack' && ref < 20_000);
  assert.deepEqual(report.type === 'error' && [report.ref, report.code], [ref, 'STORE_UNAVAILABLE']);
  const again = await m.api('POST', '/api/jobs', { json: batch(999) });
  assert.equal(again.status, 503, 'still full: still refused, not a 500');

  // Space back: the filesystem grows. Deleting a file is not enough: the WAL held back while full is
  // checkpointed into the database as soon as there is room, and can take all of it.
  execFileSync('mount', ['-o', 'remount,size=64m', mountPoint]);
  const back = await m.api('POST', '/api/jobs', { json: batch(1000) });
  assert.equal(back.status, 201, JSON.stringify(back.body));
  assert.equal(await total(), accepted + 1 + 50);
  pilot.send(running(ref + 1));
  assert.equal((await pilot.next('ack', 'error')).type, 'ack', 'the replayed report is taken');
  assert.equal((await m.api('GET', `/api/jobs/${job.jobId}`)).body.status, 'Running');
  await pilot.close();
  assert.deepEqual(checkInvariants(await readSnapshot(m.matcher.store)), []);
});
