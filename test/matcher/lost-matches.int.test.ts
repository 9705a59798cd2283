/**
 * A connected pilot that lost a match it received: its heartbeat, which says how many matches it had
 * received when it listed its jobs, gives the job back at once instead of after the two-hour matched
 * timeout. A real matcher over real WebSockets on port 0, raw pilots speaking the protocol.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

describe('lost matches', () => {
  let m: TestMatcher;
  const pilots: RawPilot[] = [];
  const connect = async (stamp: string) => {
    const pilot = await RawPilot.connect(m.url, await m.pilotToken('local'), { stamp });
    pilots.push(pilot);
    return pilot;
  };
  const submit = async (jobs: unknown) => (await m.api('POST', '/api/jobs', { json: jobs })).body.jobIds as number[];
  const job = async (id: number) =>
    (await m.api('GET', `/api/jobs/${id}`)).body as {
      status: string;
      attempt: number;
      pilotId: string | null;
      history: { status: string; minorStatus: string }[];
    };
  const sample = (jobId: number, attempt = 1) => ({ jobId, attempt, cpuSec: 1, rssMB: 1, wallSec: 1 });

  beforeEach(async () => {
    m = await startTestMatcher();
  });
  afterEach(async () => {
    await Promise.all(pilots.splice(0).map((p) => p.close()));
    await m.close();
  });

  it('a heartbeat that covers a match and does not list it gives the job back; the jobs it lists stay', async () => {
    const [keptId, lostId] = await submit([{ executable: 'kept' }, { executable: 'lost' }]);
    const pilot = await connect('p1');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources(2), maxJobs: 2 });
    const first = await pilot.next('match');
    const second = await pilot.next('match');
    assert.deepEqual([first.job.jobId, second.job.jobId], [keptId, lostId]);
    assert.equal(second.matchSeq, 2);
    const other = await connect('p2');
    other.send({ type: 'offer', offerId: 'x1', matchSeq: 0, resources: resources() });
    await other.next('parked');

    pilot.send({ type: 'heartbeat', ref: 1, jobs: [sample(keptId as number)], matchSeq: 2 });
    await pilot.next('ack');
    const pushed = await other.next('match');
    assert.equal(pushed.job.jobId, lostId);
    assert.equal(pushed.job.attempt, 2, 'a new attempt: the lost one can never report');
    const lost = await job(lostId as number);
    assert.ok(lost.history.some((h) => h.minorStatus === 'Match lost: the pilot does not hold it'));
    const kept = await job(keptId as number);
    assert.deepEqual([kept.status, kept.attempt, kept.pilotId], ['Matched', 1, 'p1']);
  });

  it('a match the heartbeat does not cover (still on its way), or a heartbeat without a count, leaves the job Matched', async () => {
    const [jobId] = await submit({ executable: 'echo' });
    const pilot = await connect('p1');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    await pilot.next('match');
    // Sent before the match reached the pilot: it had received none.
    pilot.send({ type: 'heartbeat', ref: 1, jobs: [], matchSeq: 0 });
    await pilot.next('ack');
    // An older pilot, or one whose list is not complete: no count, no judgement.
    pilot.send({ type: 'heartbeat', ref: 2, jobs: [] });
    await pilot.next('ack');
    const view = await job(jobId as number);
    assert.deepEqual([view.status, view.attempt], ['Matched', 1]);
    // Each match is judged once: a later heartbeat covering it still can.
    pilot.send({ type: 'heartbeat', ref: 3, jobs: [], matchSeq: 1 });
    await pilot.next('ack');
    assert.equal((await job(jobId as number)).attempt, 2);
  });

  it('a job the pilot ended in a report sent just before the heartbeat stays ended', async () => {
    const [jobId] = await submit({ executable: 'echo' });
    const pilot = await connect('p1');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    await pilot.next('match');
    const at = new Date().toISOString();
    // Not awaited: the report and the heartbeat leave back to back, as a pilot sends them.
    pilot.send({
      type: 'job.status',
      ref: 1,
      jobId: jobId as number,
      attempt: 1,
      at,
      status: 'Done',
      minorStatus: 'Execution Complete',
      earlier: [{ at, status: 'Running', minorStatus: 'Application' }],
    });
    pilot.send({ type: 'heartbeat', ref: 2, jobs: [], matchSeq: 1 });
    const acks = [await pilot.next('ack'), await pilot.next('ack')];
    assert.deepEqual(
      acks.map((ack) => ack.ref),
      [1, 2],
    );
    const view = await job(jobId as number);
    assert.deepEqual([view.status, view.attempt], ['Done', 1]);
    assert.ok(!view.history.some((h) => h.minorStatus.startsWith('Match lost')));
  });
});
