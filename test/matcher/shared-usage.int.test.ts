/** Fair-share usage exchanged through a real SQLite store by two ledgers, as two matchers would. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openSqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';
import { groupsScope, ownersScope, parseScope, SharedUsage } from '../../matcher/matching/shared-usage.ts';
import type { ShareUsage } from '../../matcher/store/job-store.ts';

const scope = groupsScope('vo-a');

it('each ledger learns what the other charged since its last sync, never its own, never history', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-usage-'));
  const store = openSqliteJobStore({ path: path.join(dir, 'jobs.sqlite') });
  try {
    await store.addShareUsage([{ scope, entity: 'prod', usage: 500 }]); // before either started
    const one = new SharedUsage(store);
    const two = new SharedUsage(store);
    one.record(scope, 'prod', 2);
    assert.deepEqual(await one.sync(), [], 'the first sync only sets the start');
    assert.deepEqual(await two.sync(), []);
    one.record(scope, 'prod', 3);
    one.record(scope, 'user', 1);
    two.record(scope, 'user', 4);
    assert.deepEqual(await one.sync(), []);
    assert.deepEqual(sorted(await two.sync()), [
      { scope, entity: 'prod', usage: 3 },
      { scope, entity: 'user', usage: 1 },
    ]);
    assert.deepEqual(await one.sync(), [{ scope, entity: 'user', usage: 4 }]);
    assert.deepEqual(await one.sync(), [], 'nothing new');

    // A sync that fails keeps what it was sending for the next one.
    let failNext = true;
    const flaky = new SharedUsage({
      addShareUsage: (deltas: readonly ShareUsage[]) => {
        if (!failNext) return store.addShareUsage(deltas);
        failNext = false;
        return Promise.reject(new Error('connection lost'));
      },
    });
    flaky.record(scope, 'prod', 7);
    await assert.rejects(flaky.sync(), /connection lost/);
    assert.deepEqual(await flaky.sync(), []);
    assert.deepEqual(await one.sync(), [{ scope, entity: 'prod', usage: 7 }]);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

it('scopes round-trip; a scope this version does not know is ignored, not fatal', () => {
  assert.deepEqual(parseScope(groupsScope('vo "a"')), { kind: 'group', vo: 'vo "a"' });
  assert.deepEqual(parseScope(ownersScope('vo', 'g')), { kind: 'owner', vo: 'vo', group: 'g' });
  for (const unknown of ['', 'group', '["site","S"]', '["group"]', '["owner","vo"]', '[1,2]', '{"a":1}'])
    assert.equal(parseScope(unknown), null, unknown);
});

function sorted(usage: ShareUsage[]): ShareUsage[] {
  return [...usage].sort((a, b) => a.entity.localeCompare(b.entity));
}
