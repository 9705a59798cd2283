/**
 * Pilot activity: the store's conformance suite on SQLite and PostgreSQL, then the matcher's side over
 * a real WebSocket: log batches stored once per seq (replays acked, nothing doubled), a drain request
 * pushed at once to a connected pilot and again at its next hello, the exit record from bye,
 * heartbeats feeding the node's load and each job's usage with peaks, and who may read or drain a pilot.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openPgPilotActivityStore } from '../../matcher/store/postgres/pg-pilot-activity-store.ts';
import { openSqlitePilotActivityStore } from '../../matcher/store/sqlite/sqlite-pilot-activity-store.ts';
import { pilotActivityStoreSuite } from '../conformance/pilot-activity-store.suite.ts';
import { dropSchema, freshSchemaName, PG_TEST_URL, withCloseHook } from '../helpers/postgres.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-activity-'));
let n = 0;
after(() => rm(dir, { recursive: true, force: true }));

pilotActivityStoreSuite('sqlite', async () =>
  openSqlitePilotActivityStore({ path: path.join(dir, `activity-${(n += 1)}.sqlite`), maxLogLinesPerPilot: 5 }),
);

pilotActivityStoreSuite('postgres', async () => {
  const schema = freshSchemaName();
  const store = await openPgPilotActivityStore({ url: PG_TEST_URL, schema, maxLogLinesPerPilot: 5 });
  return withCloseHook(store, () => dropSchema(schema));
});

describe('pilot activity over the pilot WebSocket', () => {
  let m: TestMatcher;
  let pilotToken: string;
  before(async () => {
    m = await startTestMatcher();
    pilotToken = await m.pilotToken('local');
  });
  after(() => m.close());

  it('log batches are acked and stored once; GET /api/pilots/:id/logs pages them', async () => {
    const pilot = await RawPilot.connect(m.url, pilotToken, { stamp: 'logger-1' });
    const batch = [1, 2, 3].map((seq) => ({ seq, line: JSON.stringify({ level: 30, msg: `line ${seq}` }) }));
    pilot.send({ type: 'log', ref: 11, lines: batch });
    assert.equal((await pilot.next('ack')).ref, 11);
    pilot.send({ type: 'log', ref: 12, lines: [...batch, { seq: 4, line: '{"msg":"line 4"}' }] });
    assert.equal((await pilot.next('ack')).ref, 12);
    const { body } = await m.api('GET', '/api/pilots/logger-1/logs?after=1&limit=2');
    assert.deepEqual(
      body.lines.map((l: { seq: number }) => l.seq),
      [2, 3],
    );
    assert.equal(body.nextAfter, 3);
    assert.equal(body.totalLines, 4);
    assert.equal((await m.api('GET', '/api/pilots/logger-1/logs?limit=0')).body.error.code, 'BAD_QUERY');
    // Another VO's job administrator does not see this pilot at all.
    const stranger = await m.userToken('jadmin-b', 'vo-b', ['JobAdministrator']);
    assert.equal((await m.api('GET', '/api/pilots/logger-1/logs', { token: stranger })).status, 404);
    assert.equal((await m.api('POST', '/api/pilots/logger-1/drain', { token: stranger, json: {} })).status, 404);
    await pilot.close();
  });

  it('a drain reaches a connected pilot at once, and again at its next hello; bye records the exit', async () => {
    const pilot = await RawPilot.connect(m.url, pilotToken, { stamp: 'drainee-1' });
    const drained = await m.api('POST', '/api/pilots/drainee-1/drain', { json: { reason: 'downtime' } });
    assert.equal(drained.status, 200);
    assert.deepEqual([drained.body.draining, drained.body.delivered], [true, true]);
    assert.deepEqual(await pilot.next('drain'), { type: 'drain', v: 1, reason: 'downtime' });
    await pilot.close();

    const again = await RawPilot.connect(m.url, pilotToken, { stamp: 'drainee-1' });
    assert.equal((await again.next('drain')).reason, 'downtime', 'a reconnecting pilot is told again');
    again.send({ type: 'bye', reason: 'drain-command', jobsRun: 3, jobsFailed: 1 });
    await new Promise((resolve) => again.ws.once('close', resolve));
    const record = (await m.api('GET', '/api/pilots/drainee-1')).body;
    assert.equal(record.status, 'Done');
    assert.deepEqual(
      { reason: record.exit.reason, jobsRun: record.exit.jobsRun, jobsFailed: record.exit.jobsFailed },
      { reason: 'drain-command', jobsRun: 3, jobsFailed: 1 },
    );
    assert.equal(record.drain.reason, 'downtime');
    const late = await m.api('POST', '/api/pilots/drainee-1/drain', { json: {} });
    assert.deepEqual([late.body.draining, late.body.delivered], [false, false], 'an ended pilot is not drained');
    assert.equal((await m.api('POST', '/api/pilots/nobody/drain', { json: {} })).status, 404);
  });

  it('heartbeats feed the node load and the job usage (a replayed one keeps its sample time)', async () => {
    const [jobId] = (await m.api('POST', '/api/jobs', { json: { executable: 'true' } })).body.jobIds as number[];
    const pilot = await RawPilot.connect(m.url, pilotToken, { stamp: 'beater-1' });
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    const match = await pilot.next('match');
    assert.equal(match.job.jobId, jobId);
    const sampledAt = new Date(Date.now() - 5000).toISOString();
    pilot.send({
      type: 'heartbeat',
      ref: 1,
      at: sampledAt,
      jobs: [{ jobId: jobId as number, attempt: 1, cpuSec: 2, rssMB: 64, wallSec: 3, diskMB: 12 }],
      node: { load1: 0.75, diskFreeMB: 4321 },
    });
    await pilot.next('ack');
    const usage = (await m.api('GET', `/api/jobs/${jobId}/usage`)).body.usage;
    assert.deepEqual([usage.cpuSec, usage.rssMB, usage.diskMB, usage.load1, usage.at], [2, 64, 12, 0.75, sampledAt]);
    const record = (await m.api('GET', '/api/pilots/beater-1')).body;
    assert.deepEqual(record.lastHeartbeat, { at: sampledAt, load1: 0.75, diskFreeMB: 4321 });
    // Someone else's job: a user who does not own it cannot read its usage.
    const bob = await m.userToken('bob', 'local', ['NormalUser']);
    assert.equal((await m.api('GET', `/api/jobs/${jobId}/usage`, { token: bob })).status, 403);
    await pilot.close();
  });
});
