/**
 * Job uids are claimed node-wide: two root pilots on one node never hand the same uid to their jobs
 * (a shared uid would let one job read the other's files, and the end of one would kill the other).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UidPool } from '../../pilot/uid-pool.ts';

test('two pilots sharing the node take different uids; a uid given back is taken again', async () => {
  const locks = await mkdtemp(path.join(os.tmpdir(), 'ph-uids-'));
  const jobDir = await mkdtemp(path.join(os.tmpdir(), 'ph-uid-job-'));
  const first = new UidPool(700100, 700102, locks);
  const second = new UidPool(700100, 700102, locks);
  assert.equal(await first.take(), 700100);
  assert.equal(await second.take(), 700101);
  assert.equal(await first.take(), 700102);
  await assert.rejects(second.take(), /all 3 job uids \(700100-700102\) are in use/);
  await first.reclaim(jobDir, 700100);
  assert.equal(await second.take(), 700100);
});

test('a lock left by a pilot that died is stale; one held by a live process is not', async () => {
  const locks = await mkdtemp(path.join(os.tmpdir(), 'ph-uids-'));
  const dead = spawnSync('true').pid as number; // exited: its pid names nobody now
  await writeFile(path.join(locks, '700200'), String(dead));
  await writeFile(path.join(locks, '700201'), String(process.pid));
  const pool = new UidPool(700200, 700202, locks);
  assert.equal(await pool.take(), 700200, 'the stale lock is taken over');
  assert.equal(await pool.take(), 700202, 'the live one is skipped');
});
