/**
 * WebSocket liveness on the matcher's side, over real sockets: a pilot whose node froze (its TCP
 * connection up, no pong to the matcher's pings) is dropped within the configured timeout, its parked
 * offer goes with it, and a job submitted afterwards waits for a live pilot instead of being pushed into
 * the dead socket. A pilot that only sits idle but answers pings is kept.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createLogger } from '../../shared/logger.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';
import { waitFor } from '../helpers/wait.ts';

let m: TestMatcher;
const logs: Record<string, unknown>[] = [];
/** The matcher's clock runs this far ahead of the real one (the grace period passes without a sleep). */
let skewMs = 0;

before(async () => {
  const logger = createLogger({
    component: 'matcher',
    level: 'info',
    destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  });
  m = await startTestMatcher({
    logger,
    clock: { nowMs: () => Date.now() + skewMs },
    config: {
      pilotLiveness: { pingIntervalMs: 100, timeoutMs: 400 },
      faultSweeper: {
        stalledAfterSec: 600,
        failStalledAfterSec: 3 * 3600,
        matchedTimeoutSec: 7200,
        reconnectGraceSec: 60,
        maxAttempts: 4,
        rescheduleDelaysSec: [0],
      },
    },
  });
});
after(() => m.close());

it('liveness - a frozen pilot is dropped with its parked offer; an idle one that answers pings stays', async () => {
  const token = await m.pilotToken('local');
  const frozen = await RawPilot.connect(m.url, token, { stamp: 'frozen' }, { autoPong: false });
  // (The first case: no job runs on the frozen pilot.)
  const idle = await RawPilot.connect(m.url, token, { stamp: 'idle' });
  try {
    frozen.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    await frozen.next('parked');
    const [code] = (await once(frozen.ws, 'close')) as [number];
    assert.equal(code, 1006, 'terminated, not closed politely: the node is not listening');
    const dropped = logs.filter((r) => r.msg === 'pilot connection unresponsive, dropped');
    assert.equal(dropped.length, 1);
    assert.equal(dropped[0]?.pilotId, 'frozen', 'the log names the pilot');

    // Three more rounds of pings: the idle pilot answers them and stays.
    for (let i = 0; i < 3; i += 1) await once(idle.ws, 'ping');
    assert.equal(idle.ws.readyState, idle.ws.OPEN);

    const submitted = await m.api('POST', '/api/jobs', { json: { executable: 'true' } });
    const [jobId] = submitted.body.jobIds as number[];
    assert.equal((await m.api('GET', `/api/jobs/${jobId}`)).body.status, 'Waiting', 'not pushed to the dropped pilot');
    idle.send({ type: 'offer', offerId: 'o2', matchSeq: 0, resources: resources() });
    assert.equal((await idle.next('match')).job.jobId, jobId);
    // Ended here, so that no job of this test is left to a pilot that is gone.
    idle.sendStatus(1, jobId as number, 1, 'Killed');
    await idle.next('ack');
  } finally {
    await frozen.close();
    await idle.close();
  }
});

it('liveness - the running job of a frozen pilot is Stalled at once, then runs again elsewhere as attempt 2', async () => {
  const token = await m.pilotToken('local');
  const submitted = await m.api('POST', '/api/jobs', { json: { executable: 'sleep', arguments: ['600'] } });
  const jobId = submitted.body.jobIds[0] as number;
  const frozen = await RawPilot.connect(m.url, token, { stamp: 'frozen-mid-run' }, { autoPong: false });
  const other = await RawPilot.connect(m.url, token, { stamp: 'other' });
  try {
    frozen.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    assert.equal((await frozen.next('match')).job.jobId, jobId);
    frozen.sendStatus(1, jobId, 1, 'Running');
    await frozen.next('ack');
    other.send({ type: 'offer', offerId: 'o2', matchSeq: 0, resources: resources() });
    await other.next('parked');

    await once(frozen.ws, 'close');
    const stalled = await waitFor(async () => {
      const job = (await m.api('GET', `/api/jobs/${jobId}`)).body;
      return job.status === 'Stalled' ? job : undefined;
    }, 'the job Stalled');
    const entry = (stalled.history as { status: string; source: string }[]).at(-1);
    assert.deepEqual([entry?.status, entry?.source], ['Stalled', 'PilotLiveness']);

    await m.matcher.sweepFaults();
    assert.equal((await m.api('GET', `/api/jobs/${jobId}`)).body.status, 'Stalled', 'kept within the grace period');
    skewMs += 61_000;
    await m.matcher.sweepFaults(); // rescheduled (no hold here)
    await m.matcher.sweepFaults(); // released to Waiting: the parked pilot gets it
    const match = await other.next('match');
    assert.deepEqual([match.job.jobId, match.job.attempt], [jobId, 2]);

    // The frozen pilot, resumed, comes back: it cannot touch attempt 2.
    const resumed = await RawPilot.connect(m.url, token, { stamp: 'frozen-mid-run' });
    try {
      resumed.sendStatus(2, jobId, 1, 'Done');
      const refused = await resumed.next('error');
      assert.equal(refused.code, 'FORBIDDEN', 'the job is no longer its to report on');
    } finally {
      await resumed.close();
    }
    const after = (await m.api('GET', `/api/jobs/${jobId}`)).body;
    assert.deepEqual([after.status, after.attempt, after.pilotId], ['Matched', 2, 'other']);
    other.sendStatus(1, jobId, 2, 'Killed');
    await other.next('ack');
  } finally {
    await frozen.close();
    await other.close();
  }
});

it('liveness - a pilot whose connection closes without a bye has its job Stalled at once; back in time, its heartbeat revives it', async () => {
  const token = await m.pilotToken('local');
  const submitted = await m.api('POST', '/api/jobs', { json: { executable: 'sleep', arguments: ['600'] } });
  const jobId = submitted.body.jobIds[0] as number;
  const cut = await RawPilot.connect(m.url, token, { stamp: 'cut-off' });
  cut.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
  assert.equal((await cut.next('match')).job.jobId, jobId);
  cut.sendStatus(1, jobId, 1, 'Running');
  await cut.next('ack');
  cut.ws.terminate(); // the process died, or the network failed: no close frame, no bye

  const stalled = await waitFor(async () => {
    const job = (await m.api('GET', `/api/jobs/${jobId}`)).body;
    return job.status === 'Stalled' ? job : undefined;
  }, 'the job Stalled as the connection closed');
  const entry = (stalled.history as { status: string; source: string }[]).at(-1);
  assert.deepEqual([entry?.status, entry?.source], ['Stalled', 'PilotLiveness']);

  const back = await RawPilot.connect(m.url, token, { stamp: 'cut-off' });
  try {
    back.send({ type: 'heartbeat', ref: 2, jobs: [{ jobId, attempt: 1, cpuSec: 1, rssMB: 10, wallSec: 5 }] });
    await back.next('ack');
    const job = (await m.api('GET', `/api/jobs/${jobId}`)).body;
    assert.deepEqual([job.status, job.attempt, job.pilotId], ['Running', 1, 'cut-off'], 'the job is still its own');
  } finally {
    back.sendStatus(3, jobId, 1, 'Killed');
    await back.close();
  }
});

it('liveness - a pilot that dies between taking its match and starting the job: the job runs elsewhere as attempt 2 after the grace', async () => {
  const token = await m.pilotToken('local');
  const submitted = await m.api('POST', '/api/jobs', { json: { executable: 'sleep', arguments: ['600'] } });
  const jobId = submitted.body.jobIds[0] as number;
  const dying = await RawPilot.connect(m.url, token, { stamp: 'dies-after-match' });
  const other = await RawPilot.connect(m.url, token, { stamp: 'other-2' });
  try {
    dying.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    assert.equal((await dying.next('match')).job.jobId, jobId);
    const closed = once(dying.ws, 'close');
    dying.ws.terminate(); // killed before it could say Running: it will never report on the job
    await closed;
    other.send({ type: 'offer', offerId: 'o2', matchSeq: 0, resources: resources() });
    await other.next('parked');
    await waitFor(
      async () => logs.some((r) => r.msg === 'pilot disconnected' && r.pilotId === 'dies-after-match'),
      'the pilot gone',
    );

    await m.matcher.sweepFaults();
    assert.equal((await m.api('GET', `/api/jobs/${jobId}`)).body.status, 'Matched', 'kept within the grace period');
    skewMs += 61_000;
    await m.matcher.sweepFaults(); // rescheduled and, with no hold, released: the parked pilot gets it
    assert.equal((await m.api('GET', `/api/jobs/${jobId}`)).body.attempt, 2, 'a new attempt after the grace');
    const match = await other.next('match');
    assert.deepEqual([match.job.jobId, match.job.attempt], [jobId, 2]);
    const job = (await m.api('GET', `/api/jobs/${jobId}`)).body;
    const steps = (job.history as { attempt: number; status: string; minorStatus: string }[]).map(
      (h) => `${h.attempt} ${h.status} ${h.minorStatus}`,
    );
    assert.ok(steps.includes('1 Rescheduled Job matched: pilot not running'), steps.join(' | '));
  } finally {
    await other.close();
  }
});
