/** The fault sweeper over a real SQLite store, with a clock the test moves. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../shared/logger.ts';
import { FaultSweeper, type FaultSweeperOptions } from '../../matcher/maintenance/fault-sweeper.ts';
import { openSqliteJobStore, type SqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';
import { alice, newJob } from '../helpers/jobs.ts';

const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-sweeper-'));
after(() => rm(dir, { recursive: true, force: true }));
let files = 0;

const options: FaultSweeperOptions = {
  stalledAfterSec: 600,
  failStalledAfterSec: 3600,
  matchedTimeoutSec: 7200,
  reconnectGraceSec: 90,
  maxAttempts: 3,
  rescheduleDelaysSec: [60, 180],
};

async function rig() {
  const store = openSqliteJobStore({ path: path.join(dir, `sweep-${(files += 1)}.sqlite`) });
  const clock = { now: Date.parse('2026-01-01T00:00:00.000Z'), nowMs: () => clock.now };
  const iso = () => new Date(clock.now).toISOString();
  const connected = new Set<string>();
  const returned: number[][] = [];
  const sweeper = new FaultSweeper({
    store,
    clock,
    logger: silentLogger(),
    isPilotConnected: async (pilotId) => connected.has(pilotId),
    jobsReturned: async (ids) => void returned.push(ids),
    options,
  });
  const {
    jobIds: [jobId],
    taskQueueIds: [tqId],
  } = await store.submitJobs([newJob(alice)], iso());
  /** A pilot takes the job (Matched to it); its attempt. */
  const matchTo = async (pilotId: string) => {
    const claim = await store.claimFromTaskQueue(tqId as number, {
      pilotId,
      site: 'Site.A',
      ce: 'ce1',
      at: iso(),
      jobType: 'User',
      maxRunning: null,
      matchingDelaySec: null,
    });
    assert.ok(claim.job, 'the job is claimable');
    return claim.job;
  };
  /** A pilot takes the job and reports it Running. */
  const startOn = async (pilotId: string) => {
    const job = await matchTo(pilotId);
    await store.reportStatus(job.id, job.attempt, { status: 'Running', at: iso(), source: 'Pilot' });
    return job.attempt;
  };
  return {
    store,
    clock,
    connected,
    returned,
    sweeper,
    jobId: jobId as number,
    tqId: tqId as number,
    matchTo,
    startOn,
  };
}

const statusOf = async (store: SqliteJobStore, id: number) => {
  const job = await store.getJob(id);
  return [job?.status, job?.attempt, job?.minorStatus];
};

test('silent for the stall time → Stalled; pilot gone → rescheduled, held, then Waiting and claimable again', async () => {
  const r = await rig();
  r.connected.add('p1');
  await r.startOn('p1');
  r.clock.now += 599_000;
  assert.deepEqual(await r.sweeper.sweep(), { stalled: 0, rescheduled: 0, failed: 0, released: 0 });
  r.clock.now += 2_000;
  assert.deepEqual(await r.sweeper.sweep(), { stalled: 1, rescheduled: 0, failed: 0, released: 0 });
  assert.equal((await r.store.getJob(r.jobId))?.status, 'Stalled');
  // Its pilot is still connected: the job stays Stalled (the pilot may come back to it).
  r.clock.now += 60_000;
  assert.equal((await r.sweeper.sweep()).rescheduled, 0);
  r.connected.delete('p1');
  assert.equal((await r.sweeper.sweep()).rescheduled, 1);
  assert.deepEqual(await statusOf(r.store, r.jobId), ['Rescheduled', 2, 'Job stalled: pilot not running']);
  r.clock.now += 59_000;
  assert.equal((await r.sweeper.sweep()).released, 0, 'held for the first delay (60 s)');
  r.clock.now += 1_000;
  assert.equal((await r.sweeper.sweep()).released, 1);
  assert.deepEqual(r.returned, [[r.tqId]]);
  assert.deepEqual(await statusOf(r.store, r.jobId), ['Waiting', 2, 'Job Rescheduled']);
  assert.equal(await r.startOn('p2'), 2);
  await r.store.close();
});

test('a heartbeat brings a Stalled job back; a connected pilot that stays silent ends it after the fail time', async () => {
  const r = await rig();
  r.connected.add('p1');
  await r.startOn('p1');
  r.clock.now += 601_000;
  await r.sweeper.sweep();
  await r.store.recordHeartbeat(
    r.jobId,
    1,
    { cpuSec: 5, rssMB: 10, wallSec: 601 },
    new Date(r.clock.now).toISOString(),
  );
  assert.equal((await r.store.getJob(r.jobId))?.status, 'Running');
  r.clock.now += 601_000;
  assert.equal((await r.sweeper.sweep()).stalled, 1);
  r.clock.now += 3_600_000;
  assert.equal((await r.sweeper.sweep()).rescheduled, 1);
  assert.match(String((await r.store.getJob(r.jobId))?.minorStatus), /^Stalling for more than \d+ sec$/);
  await r.store.close();
});

test('a job Matched too long is rescheduled; the last attempt ends Failed instead', async () => {
  const r = await rig();
  for (let attempt = 1; attempt <= 3; attempt += 1) {
    // Connected all along: only the matched timeout ends the attempt.
    r.connected.add(`p${attempt}`);
    assert.equal((await r.matchTo(`p${attempt}`)).attempt, attempt);
    r.clock.now += 7_201_000;
    const report = await r.sweeper.sweep();
    if (attempt < 3) {
      assert.equal(report.rescheduled, 1);
      r.clock.now += 600_000; // past every hold
      assert.equal((await r.sweeper.sweep()).released, 1);
    } else {
      assert.equal(report.failed, 1);
    }
  }
  assert.deepEqual(await statusOf(r.store, r.jobId), [
    'Failed',
    3,
    'Matched for more than 7200 sec; maximum of reschedulings reached',
  ]);
  await r.store.close();
});

test('a job Matched to a pilot that died before starting it comes back after the reconnect grace', async () => {
  const r = await rig();
  assert.equal((await r.matchTo('p1')).attempt, 1);
  // p1 was never seen connected again (killed between taking the match and reporting Running).
  r.clock.now += 89_000;
  assert.equal((await r.sweeper.sweep()).rescheduled, 0, 'within the grace the pilot may come back');
  r.clock.now += 2_000;
  assert.deepEqual(await r.sweeper.sweep(), { stalled: 0, rescheduled: 1, failed: 0, released: 0 });
  assert.deepEqual(await statusOf(r.store, r.jobId), ['Rescheduled', 2, 'Job matched: pilot not running']);
  r.clock.now += 60_000; // the first hold
  assert.equal((await r.sweeper.sweep()).released, 1);
  assert.equal((await r.store.getJob(r.jobId))?.status, 'Waiting');

  // Matched again, to a pilot that stays connected: left alone until the matched timeout.
  r.connected.add('p2');
  assert.equal((await r.matchTo('p2')).attempt, 2);
  r.clock.now += 3_600_000;
  assert.equal((await r.sweeper.sweep()).rescheduled, 0);
  assert.deepEqual(await statusOf(r.store, r.jobId), ['Matched', 2, 'Assigned']);
  await r.store.close();
});

test('released counts jobs: two rescheduled jobs of one TQ come back in one pass as two', async () => {
  const r = await rig();
  await r.store.submitJobs([newJob(alice)], new Date(r.clock.now).toISOString());
  await r.startOn('p1');
  await r.startOn('p2');
  r.clock.now += 601_000;
  // Neither pilot is connected: one pass stalls both jobs and reschedules them.
  assert.deepEqual(await r.sweeper.sweep(), { stalled: 2, rescheduled: 2, failed: 0, released: 0 });
  r.clock.now += 60_000;
  assert.equal((await r.sweeper.sweep()).released, 2);
  assert.deepEqual(r.returned, [[r.tqId]]);
  await r.store.close();
});
