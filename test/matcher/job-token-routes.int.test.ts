/**
 * The HTTP fallback for pilots: a job's own token reports its status and heartbeats over REST, with
 * the same state machine and idempotency as the WebSocket path, and gets its pending commands back.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

describe('job token routes (HTTP fallback)', () => {
  let m: TestMatcher;
  let pilot: RawPilot;

  const matched = async () => {
    const [jobId] = (await m.api('POST', '/api/jobs', { json: { executable: 'true' } })).body.jobIds;
    pilot.send({ type: 'offer', offerId: `o${jobId}`, matchSeq: 0, resources: resources() });
    const { job } = await pilot.next('match');
    assert.equal(job.jobId, jobId);
    return job;
  };

  beforeEach(async () => {
    m = await startTestMatcher();
    pilot = await RawPilot.connect(m.url, await m.pilotToken('local'), { stamp: 'http-pilot' });
  });
  afterEach(async () => {
    await pilot.close();
    await m.close();
  });

  it('status reports drive the job to Done; a replay is recorded once; then the token is dead', async () => {
    const job = await matched();
    const report = (body: object) =>
      m.api('POST', `/api/jobs/${job.jobId}/status`, { token: job.jobToken, json: { attempt: job.attempt, ...body } });
    const at = new Date().toISOString();
    const running = await report({ at, status: 'Running', minorStatus: 'Application' });
    assert.equal(running.status, 200);
    assert.equal(running.body.applied, true);
    const replay = await report({ at, status: 'Running', minorStatus: 'Application' });
    assert.equal(replay.body.duplicate, true, 'same report, same key: recorded once');
    // The same report over the WebSocket is a duplicate too.
    pilot.send({
      type: 'job.status',
      ref: 1,
      jobId: job.jobId,
      attempt: job.attempt,
      at,
      status: 'Running',
      minorStatus: 'Application',
    });
    await pilot.next('ack');
    assert.equal((await report({ at: new Date().toISOString(), status: 'Done', exitCode: 0 })).body.status, 'Done');
    const history = (await m.api('GET', `/api/jobs/${job.jobId}`)).body.history;
    assert.equal(history.filter((h: { status: string }) => h.status === 'Running').length, 1);
    const late = await report({ at: new Date().toISOString(), status: 'Running' });
    assert.equal(late.status, 401);
    assert.equal(late.body.error.code, 'TOKEN_ATTEMPT_ENDED');
  });

  it("a heartbeat is recorded (commands come back with it); bad bodies are 400; a killed job's token is dead", async () => {
    const job = await matched();
    const beat = () =>
      m.api('POST', `/api/jobs/${job.jobId}/heartbeat`, {
        token: job.jobToken,
        json: { attempt: job.attempt, cpuSec: 3, rssMB: 100, wallSec: 5 },
      });
    const first = await beat();
    assert.equal(first.status, 200);
    assert.deepEqual(first.body.commands, []);
    const seen = (await m.api('GET', `/api/jobs/${job.jobId}`)).body;
    assert.ok(seen.heartbeatAt, 'the heartbeat was recorded');
    await m.api('POST', `/api/jobs/${job.jobId}/status`, {
      token: job.jobToken,
      json: { attempt: job.attempt, at: new Date().toISOString(), status: 'Running' },
    });
    // Kill while the pilot is (as far as the matcher knows) reachable only over HTTP.
    await pilot.close();
    assert.equal((await m.api('POST', `/api/jobs/${job.jobId}/kill`)).body.killed, true);
    const bad = await m.api('POST', `/api/jobs/${job.jobId}/heartbeat`, {
      token: job.jobToken,
      json: { attempt: job.attempt, cpuSec: -1, rssMB: 1, wallSec: 1 },
    });
    assert.equal(bad.status, 400);
    // The job is Killed: its token is dead, so the heartbeat is refused rather than answered.
    const afterKill = await beat();
    assert.equal(afterKill.status, 401);
    assert.equal(afterKill.body.error.code, 'TOKEN_ATTEMPT_ENDED');
    pilot = await RawPilot.connect(m.url, await m.pilotToken('local'), { stamp: 'http-pilot-2' });
  });
});
