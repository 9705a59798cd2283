/**
 * The SQLite file under write load: schema upgrades keep every job, and the WAL checkpointer (a worker
 * thread) keeps the WAL bounded while claims keep landing, holding writes only for its catch-ups.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SQLITE_MIGRATIONS } from '../../matcher/store/sqlite/migrations.ts';
import { openSqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';
import { WalCheckpointer, type CheckpointPass } from '../../matcher/store/sqlite/wal-checkpointer.ts';
import { WriteBatcher } from '../../matcher/store/sqlite/write-batcher.ts';
import { silentLogger } from '../../shared/logger.ts';
import { alice, newJob } from '../helpers/jobs.ts';

const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-wal-'));
after(() => rm(dir, { recursive: true, force: true }));

const claimAt = (pilotId: string) => ({
  pilotId,
  site: 'Site.A',
  ce: 'ce1',
  at: '2026-01-01T00:00:01.000Z',
  jobType: 'User',
  maxRunning: null,
  matchingDelaySec: null,
});

test('upgrading a version-4 file keeps waiting jobs claimable in order and every history row', async () => {
  const file = path.join(dir, 'v4.sqlite');
  // A store as version 4 left it: waiting jobs listed in tq_jobs, history ids from AUTOINCREMENT.
  const db = new Database(file);
  db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  for (const migration of SQLITE_MIGRATIONS.filter((m) => m.version <= 4)) {
    db.exec(migration.sql);
    db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(migration.version, migration.name, 'then');
  }
  db.exec(`
    INSERT INTO task_queues (id, tq_key, vo, grp, owner, requirements, waiting_jobs, created_at)
      VALUES (7, 'k', 'vo-a', 'g', 'alice', '{}', 3, 'then');
    INSERT INTO jobs (id, vo, grp, owner, name, job_type, priority, description, task_queue_id, status, submitted_at, last_update_at)
      VALUES (1, 'vo-a', 'g', 'alice', 'low', 'User', 1, '{}', 7, 'Waiting', 'then', 'then'),
             (2, 'vo-a', 'g', 'alice', 'high', 'User', 5, '{}', 7, 'Waiting', 'then', 'then'),
             (3, 'vo-a', 'g', 'alice', 'low-later', 'User', 1, '{}', 7, 'Waiting', 'then', 'then'),
             (4, 'vo-a', 'g', 'alice', 'done', 'User', 1, '{}', 7, 'Done', 'then', 'then');
    INSERT INTO tq_jobs (job_id, tq_id, priority) VALUES (1, 7, 1), (2, 7, 5), (3, 7, 1);
    INSERT INTO job_history (id, job_id, attempt, at, status, minor_status, application_status, source, applied)
      VALUES (40, 4, 1, 'then', 'Done', '', 'Unknown', 'Pilot', 1);
  `);
  db.close();

  const store = openSqliteJobStore({ path: file });
  try {
    const claimed = [];
    for (let i = 0; i < 4; i += 1) claimed.push((await store.claimFromTaskQueue(7, claimAt('p1'))).job?.id ?? null);
    assert.deepEqual(claimed, [2, 1, 3, null], 'priority first, then FIFO; nothing left after three');
    const history = await store.getJobHistory(4);
    assert.deepEqual(
      history.map((entry) => entry.status),
      ['Done'],
    );
    const after = await store.getJobHistory(2);
    assert.equal(after.at(-1)?.status, 'Matched');
    const tq = await store.getTaskQueue(7);
    assert.equal(tq?.waitingJobs, 0);
  } finally {
    await store.close();
  }
  const check = new Database(file, { readonly: true });
  const version = check.prepare('SELECT max(version) FROM schema_migrations').pluck().get();
  const tqJobs = check.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'tq_jobs'").pluck().get();
  const historyIds = check.prepare('SELECT id FROM job_history WHERE job_id = 2').pluck().all() as number[];
  check.close();
  assert.equal(version, SQLITE_MIGRATIONS.at(-1)?.version);
  assert.equal(tqJobs, 0);
  assert.ok((historyIds[0] ?? 0) > 40, 'new history rows come after the old ones');
});

test('a held batcher keeps writes queued, runs none of them, and runs them all on release', async () => {
  const db = new Database(path.join(dir, 'gate.sqlite'));
  db.exec('CREATE TABLE t (n INTEGER)');
  const batcher = new WriteBatcher(db);
  const insert = db.prepare('INSERT INTO t (n) VALUES (?)');
  const count = db.prepare('SELECT count(*) FROM t').pluck();
  batcher.hold();
  const writes = [1, 2, 3].map((n) => batcher.write(() => insert.run(n).changes));
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(count.get(), 0, 'nothing written while held');
  batcher.release();
  assert.deepEqual(await Promise.all(writes), [1, 1, 1]);
  assert.equal(count.get(), 3);
  db.close();
});

test('the checkpointer keeps the WAL bounded under claims: catch-ups under a hold, then SQLite restarts it', async () => {
  const file = path.join(dir, 'wal.sqlite');
  const store = openSqliteJobStore({ path: file, autoCheckpoint: false });
  const restartAboveFrames = 64;
  const checkpointer = new WalCheckpointer({
    path: file,
    gate: store.writeGate,
    logger: silentLogger(),
    intervalMs: 2,
    restartAboveFrames,
    holdTimeoutMs: 5_000,
    onFailure: () => assert.fail('the checkpointer should not fail here'),
  });
  try {
    const passes: CheckpointPass[] = [];
    let restartedAfterHold = false;
    checkpointer.on('pass', (pass) => {
      // After a catch-up the next commit starts the WAL afresh: a later pass sees a short WAL.
      if (passes.some((p) => p.held) && !pass.held && pass.walFrames < restartAboveFrames) restartedAfterHold = true;
      passes.push(pass);
    });
    // Claims keep committing (one group commit each) while the checkpointer works, until it has
    // restarted the WAL after a hold; the cap turns a checkpointer that never does into a failure.
    const claimed = new Set<number>();
    let submitted = 0;
    while (!restartedAfterHold && submitted < 20_000) {
      const { jobIds } = await store.submitJobs(
        Array.from({ length: 200 }, () => newJob(alice)),
        '2026-01-01T00:00:00.000Z',
      );
      submitted += jobIds.length;
      const tq = (await store.getJob(jobIds[0] as number))?.taskQueueId as number;
      for (;;) {
        const result = await store.claimFromTaskQueue(tq, claimAt('p1'));
        if (!result.job) break;
        assert.ok(!claimed.has(result.job.id), `job ${result.job.id} claimed twice`);
        claimed.add(result.job.id);
      }
    }
    assert.ok(restartedAfterHold, 'the WAL was restarted after a catch-up');
    assert.equal(claimed.size, submitted, 'every job claimed once, none lost while writes were held');
    assert.ok(checkpointer.holds >= 1);
    const heldPass = passes.find((p) => p.held);
    assert.equal(
      heldPass?.checkpointedFrames,
      heldPass?.walFrames,
      'the catch-up under a hold checkpoints every frame',
    );
  } finally {
    await checkpointer.stop();
    await store.close();
  }
});

test('a checkpointer that cannot run hands checkpoints back to the commits, and the WAL stays short', async () => {
  const file = path.join(dir, 'fallback.sqlite');
  const store = openSqliteJobStore({ path: file, autoCheckpoint: false });
  const failed = new Promise<void>((resolve) => {
    const checkpointer = new WalCheckpointer({
      path: path.join(dir, 'no-such-dir', 'missing.sqlite'),
      gate: store.writeGate,
      logger: silentLogger(),
      intervalMs: 2,
      restartAboveFrames: 64,
      holdTimeoutMs: 5_000,
      onFailure: () => {
        store.checkpointInCommits();
        resolve();
        void checkpointer.stop();
      },
    });
  });
  await failed;
  // With SQLite's own checkpoints back, a stream of claims leaves a short WAL.
  const { jobIds } = await store.submitJobs(
    Array.from({ length: 3000 }, () => newJob(alice)),
    '2026-01-01T00:00:00.000Z',
  );
  const tq = (await store.getJob(jobIds[0] as number))?.taskQueueId as number;
  for (let i = 0; i < 3000; i += 1) await store.claimFromTaskQueue(tq, claimAt('p1'));
  const probe = new Database(file);
  const [wal] = probe.pragma('wal_checkpoint(PASSIVE)') as { log: number }[];
  probe.close();
  await store.close();
  assert.ok((wal?.log ?? Infinity) < 2000, `the WAL stayed short (${wal?.log} frames)`);
});
