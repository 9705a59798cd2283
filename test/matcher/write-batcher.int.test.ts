/** Group commit: writes of one event-loop turn share a transaction; a failing write fails alone. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { WriteBatcher } from '../../matcher/store/sqlite/write-batcher.ts';

async function withDb(test: (db: Database.Database) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-batch-'));
  const db = new Database(path.join(dir, 'x.sqlite'));
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (v INTEGER NOT NULL)');
  try {
    await test(db);
  } finally {
    db.close();
    await rm(dir, { recursive: true, force: true });
  }
}

it('write batcher - writes requested together commit together, each with its own result', async () => {
  await withDb(async (db) => {
    const batcher = new WriteBatcher(db);
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const results = await Promise.all([1, 2, 3].map((v) => batcher.write(() => Number(insert.run(v).lastInsertRowid))));
    assert.deepEqual(results, [1, 2, 3]);
    assert.deepEqual(db.prepare('SELECT v FROM t ORDER BY v').pluck().all(), [1, 2, 3]);
  });
});

it('write batcher - a write that throws after writing leaves nothing behind and fails alone', async () => {
  await withDb(async (db) => {
    const batcher = new WriteBatcher(db);
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const outcomes = await Promise.allSettled([
      batcher.write(() => insert.run(1)),
      batcher.write(() => {
        insert.run(99);
        throw new Error('stale attempt');
      }),
      batcher.write(() => insert.run(3)),
    ]);
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.equal((outcomes[1] as PromiseRejectedResult).reason.message, 'stale attempt');
    assert.deepEqual(db.prepare('SELECT v FROM t ORDER BY v').pluck().all(), [1, 3]);
  });
});
