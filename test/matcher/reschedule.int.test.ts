/** `POST /api/jobs/{id}/reschedule` against a real matcher, with a raw pilot on a real WebSocket. */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

describe('reschedule', () => {
  let m: TestMatcher;
  let pilot: RawPilot | null = null;
  beforeEach(async () => {
    m = await startTestMatcher({
      config: {
        faultSweepIntervalMs: 3_600_000,
        faultSweeper: {
          stalledAfterSec: 600,
          failStalledAfterSec: 3600,
          matchedTimeoutSec: 7200,
          reconnectGraceSec: 90,
          maxAttempts: 2,
          rescheduleDelaysSec: [60],
        },
      },
    });
  });
  afterEach(async () => {
    await pilot?.close();
    await m.close();
  });

  const finish = async (jobId: number, attempt: number, ref: number) => {
    pilot?.send({
      type: 'job.status',
      ref,
      jobId,
      attempt,
      at: new Date().toISOString(),
      status: 'Failed',
      minorStatus: 'Application Finished With Errors (exit code 3)',
      exitCode: 3,
    });
    await pilot?.next('ack');
  };

  it('a failed job runs again as attempt 2 at once; the owner only; the last attempt is refused', async () => {
    const alice = await m.userToken('alice');
    const bob = await m.userToken('bob');
    const submitted = await m.api('POST', '/api/jobs', { token: alice, json: { executable: '/bin/false' } });
    const [jobId] = submitted.body.jobIds as number[];
    const id = jobId as number;
    const waiting = await m.api('POST', `/api/jobs/${id}/reschedule`, { token: alice });
    assert.deepEqual(
      [waiting.status, waiting.body.error?.code],
      [409, 'JOB_NOT_RESCHEDULABLE'],
      'Waiting: nothing to redo',
    );

    pilot = await RawPilot.connect(m.url, await m.pilotToken('vo-a'), { stamp: 'p1', site: 'Site.A' });
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    assert.equal((await pilot.next('match')).job.attempt, 1);
    await finish(id, 1, 1);

    const stranger = await m.api('POST', `/api/jobs/${id}/reschedule`, { token: bob });
    assert.deepEqual([stranger.status, stranger.body.error?.code], [403, 'FORBIDDEN'], "another user's job");
    const again = await m.api('POST', `/api/jobs/${id}/reschedule`, { token: alice });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { jobId: id, attempt: 2, status: 'Waiting' });

    // No hold for a user's reschedule: the next offer gets attempt 2 at once.
    pilot.send({ type: 'offer', offerId: 'o2', matchSeq: 1, resources: resources() });
    const second = await pilot.next('match');
    assert.deepEqual([second.job.jobId, second.job.attempt], [id, 2]);
    await finish(id, 2, 2);

    const last = await m.api('POST', `/api/jobs/${id}/reschedule`, { token: alice });
    assert.deepEqual([last.status, last.body.error?.code], [409, 'JOB_NOT_RESCHEDULABLE']);
    const job = (await m.api('GET', `/api/jobs/${id}`, { token: alice })).body;
    assert.deepEqual([job.status, job.attempt], ['Failed', 2], 'a refused reschedule changes nothing');
    assert.deepEqual(
      (job.history as { attempt: number; status: string }[]).map((h) => `${h.attempt}:${h.status}`),
      [
        '1:Received',
        '1:Checking',
        '1:Waiting',
        '1:Matched',
        '1:Failed',
        '1:Rescheduled',
        '2:Waiting',
        '2:Matched',
        '2:Failed',
      ],
    );
  });

  it('rescheduling a job a pilot runs kills that attempt on the pilot at once', async () => {
    const [jobId] = (await m.api('POST', '/api/jobs', { json: { executable: 'sleep', arguments: ['100'] } })).body
      .jobIds as number[];
    pilot = await RawPilot.connect(m.url, await m.pilotToken('local'), { stamp: 'p1', site: 'Site.A' });
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    await pilot.next('match');
    const response = await m.api('POST', `/api/jobs/${jobId}/reschedule`);
    assert.equal(response.body.attempt, 2);
    const { commands } = await pilot.next('commands');
    assert.deepEqual(commands, [{ jobId, attempt: 1, command: 'kill' }]);
  });
});
