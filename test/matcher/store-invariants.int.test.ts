/**
 * The store invariant checker (matcher/store/invariants.ts) is itself tested: it passes on a store that
 * went through real flows (match, run, Done, kill, reschedule to attempt 2, a reschedule held), and
 * each invariant, broken on its own, is caught and named: in hand-made snapshots for every invariant,
 * and in a real SQLite file whose counters are corrupted behind the store's back.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DEFAULT_SQLITE_FILE } from '../../matcher/store/location.ts';
import {
  checkInvariants,
  readSnapshot,
  type InvariantName,
  type StoreSnapshot,
} from '../../matcher/store/invariants.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';
import type { JobStatus } from '../../shared/job/status.ts';

let m: TestMatcher;
before(async () => {
  m = await startTestMatcher();
});
after(() => m.close());

const names = (snapshot: StoreSnapshot): InvariantName[] => checkInvariants(snapshot).map((v) => v.invariant);

it('invariants - hold after real flows: matched, running, done, killed, rescheduled to attempt 2', async () => {
  const token = await m.pilotToken('local');
  const submitted = await m.api('POST', '/api/jobs', {
    json: [{ executable: 'a' }, { executable: 'b' }, { executable: 'c' }, { executable: 'd' }, { executable: 'e' }],
  });
  const [done, running, killed, rescheduled] = submitted.body.jobIds as number[];
  const pilot = await RawPilot.connect(m.url, token, { stamp: 'inv-1' });
  try {
    const report = async (ref: number, jobId: number, attempt: number, status: JobStatus) => {
      pilot.send({ type: 'job.status', ref, jobId, attempt, at: new Date().toISOString(), status });
      await pilot.next('ack');
    };
    for (let i = 0; i < 4; i += 1) {
      pilot.send({ type: 'offer', offerId: `o${i}`, matchSeq: i, resources: resources() });
      await pilot.next('match');
    }
    await report(1, done as number, 1, 'Running');
    await report(2, done as number, 1, 'Done');
    await report(3, running as number, 1, 'Running');
    await report(4, killed as number, 1, 'Running');
    assert.equal((await m.api('POST', `/api/jobs/${killed}/kill`)).status, 200);
    await report(5, rescheduled as number, 1, 'Running');
    await report(6, rescheduled as number, 1, 'Failed');
    assert.equal((await m.api('POST', `/api/jobs/${rescheduled}/reschedule`)).status, 200);
    // Held after a reschedule, as the fault sweeper holds one: attempt 2 is counted, its first history
    // entry comes when it waits again.
    const held = await m.matcher.store.rescheduleJob(running as number, 1, {
      at: new Date().toISOString(),
      reason: 'held for the test',
      holdUntil: new Date(Date.now() + 3_600_000).toISOString(),
      maxAttempts: 4,
      source: 'FaultSweeper',
      onLimit: 'fail',
      allowFinished: false,
    });
    assert.equal(held.kind, 'rescheduled');

    const snapshot = await readSnapshot(m.matcher.store);
    assert.equal(snapshot.jobs.length, 5);
    assert.deepEqual(checkInvariants(snapshot), []);
  } finally {
    await pilot.close();
  }
});

it('invariants - each broken invariant is caught and named (hand-made snapshots)', () => {
  const valid = (): StoreSnapshot => ({
    jobs: [
      { id: 1, status: 'Running', attempt: 1, pilotId: 'p1', site: 'S', jobType: 'User', taskQueueId: 1 },
      { id: 2, status: 'Waiting', attempt: 2, pilotId: null, site: null, jobType: 'User', taskQueueId: 1 },
      { id: 3, status: 'Rescheduled', attempt: 2, pilotId: null, site: null, jobType: 'User', taskQueueId: 1 },
    ],
    histories: new Map([
      [
        1,
        [
          { attempt: 1, status: 'Waiting', applied: true },
          { attempt: 1, status: 'Matched', applied: true },
          { attempt: 1, status: 'Done', applied: false }, // refused reports do not count
          { attempt: 1, status: 'Running', applied: true },
        ],
      ],
      [
        2,
        [
          { attempt: 1, status: 'Waiting', applied: true },
          { attempt: 1, status: 'Matched', applied: true },
          { attempt: 1, status: 'Rescheduled', applied: true },
          { attempt: 2, status: 'Waiting', applied: true },
        ],
      ],
      [
        3,
        [
          { attempt: 1, status: 'Waiting', applied: true },
          { attempt: 1, status: 'Matched', applied: true },
          { attempt: 1, status: 'Rescheduled', applied: true }, // held: attempt 2 begins when it waits again
        ],
      ],
    ]),
    taskQueues: [{ id: 1, waitingJobs: 1 }],
    running: new Map([['S', { User: 1 }]]),
  });
  assert.deepEqual(names(valid()), []);

  type Mutable = Omit<StoreSnapshot, 'histories'> & { jobs: any[]; histories: Map<number, any[]> };
  const broken = (mutate: (s: Mutable) => void) => {
    const snapshot = valid() as Mutable;
    mutate(snapshot);
    return names(snapshot);
  };
  // A finished job rescheduled by its owner: DIRAC forces Killed (Done, Failed) -> Rescheduled.
  const killed = { attempt: 1, status: 'Killed', applied: true };
  assert.deepEqual(
    broken((s) => s.histories.get(2)?.splice(2, 0, killed)),
    [],
  );
  assert.deepEqual(
    broken((s) => s.histories.get(2)?.splice(2, 1, killed)), // Killed -> Waiting, without a reschedule
    ['history-attempt', 'history-transition'],
  );
  assert.deepEqual(
    broken((s) => (s.jobs[0].pilotId = null)),
    ['held-without-pilot'],
  );
  assert.deepEqual(
    broken((s) => s.histories.get(1)?.splice(1, 1)), // Waiting -> Running skips Matched
    ['history-transition'],
  );
  assert.deepEqual(
    broken((s) => s.histories.get(2)?.splice(2, 1)), // attempt 2 begins without a Rescheduled...
    ['history-attempt', 'history-transition'], // ...and Matched -> Waiting is no transition
  );
  assert.deepEqual(
    broken((s) => s.histories.get(1)?.push({ attempt: 0, status: 'Running', applied: true })),
    ['history-attempt', 'history-current'],
  );
  assert.deepEqual(
    broken((s) => (s.jobs[0].status = 'Completing')),
    ['history-current'],
  );
  assert.deepEqual(
    broken((s) => (s.jobs[2].attempt = 3)), // held, but two attempts past its last Rescheduled
    ['history-current'],
  );
  assert.deepEqual(
    broken((s) => (s.running = new Map([['S', { User: 2 }]]))),
    ['running-counter'],
  );
  assert.deepEqual(
    broken((s) => (s.running = new Map())),
    ['running-counter'],
  );
  assert.deepEqual(
    broken((s) => (s.taskQueues = [{ id: 1, waitingJobs: 3 }])),
    ['waiting-counter'],
  );
  assert.deepEqual(
    broken((s) => (s.jobs[1].taskQueueId = 9)),
    ['orphan-waiting', 'waiting-counter'],
  );
});

it('invariants - counters corrupted in the SQLite file behind the store are caught', async () => {
  const token = await m.pilotToken('local');
  await m.api('POST', '/api/jobs', { json: [{ executable: 'x' }, { executable: 'y' }] });
  const pilot = await RawPilot.connect(m.url, token, { stamp: 'inv-2', site: 'Corrupt.site' });
  try {
    pilot.send({ type: 'offer', offerId: 'c1', matchSeq: 0, resources: resources() });
    await pilot.next('match');
    assert.deepEqual(checkInvariants(await readSnapshot(m.matcher.store)), []);

    const db = new Database(path.join(m.dataDir, DEFAULT_SQLITE_FILE));
    try {
      assert.equal(
        db.prepare("UPDATE site_activity SET running = running + 2 WHERE site = 'Corrupt.site'").run().changes,
        1,
      );
      db.prepare('UPDATE task_queues SET waiting_jobs = waiting_jobs + 1').run();
    } finally {
      db.close();
    }
    const found = names(await readSnapshot(m.matcher.store));
    assert.ok(found.includes('running-counter'), found.join(','));
    assert.ok(found.includes('waiting-counter'), found.join(','));
  } finally {
    await pilot.close();
  }
});
