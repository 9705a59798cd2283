/** The pilot protocol against a real matcher over a real WebSocket on port 0. */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

describe('pilot protocol', () => {
  let m: TestMatcher;
  const pilots: RawPilot[] = [];
  const connect = async (stamp: string, site = 'Site.A') => {
    const pilot = await RawPilot.connect(m.url, await m.pilotToken('local'), { stamp, site });
    pilots.push(pilot);
    return pilot;
  };
  const submit = async (jobs: unknown) => (await m.api('POST', '/api/jobs', { json: jobs })).body.jobIds as number[];

  beforeEach(async () => {
    m = await startTestMatcher();
  });
  afterEach(async () => {
    await Promise.all(pilots.splice(0).map((p) => p.close()));
    await m.close();
  });

  it('an idle offer is parked and the next fitting submission is pushed to it at once', async () => {
    const pilot = await connect('p1');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources(2) });
    assert.equal((await pilot.next('parked')).offerId, 'o1');
    const [jobId] = await submit({
      executable: 'echo',
      arguments: ['hi'],
      requirements: { cores: { min: 1, max: 4 } },
    });
    const match = await pilot.next('match');
    assert.equal(match.offerId, 'o1');
    assert.equal(match.matchSeq, 1);
    assert.equal(match.job.jobId, jobId);
    assert.equal(match.job.attempt, 1);
    assert.equal(match.job.cores, 2, 'granted up to cores.max, within the offer');
    assert.equal(match.job.description.executable, 'echo');
    const job = (await m.api('GET', `/api/jobs/${jobId}`)).body;
    assert.equal(job.status, 'Matched');
    assert.equal(job.pilotId, 'p1');
    assert.equal(job.site, 'Site.A');
  });

  it('a job that does not fit the parked offer is not pushed to it', async () => {
    const pilot = await connect('p1');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources(1) });
    await pilot.next('parked');
    await submit({ executable: 'big', requirements: { cores: { min: 8 } } });
    await submit({ executable: 'small' });
    const match = await pilot.next('match');
    assert.equal(match.job.description.executable, 'small');
  });

  it('status reports are acknowledged by ref and drive the job to Done with its history', async () => {
    const [jobId] = await submit({ executable: 'echo' });
    const pilot = await connect('p1');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    const { job } = await pilot.next('match');
    const report = (ref: number, status: string, minorStatus: string, extra = {}) =>
      pilot.send({
        type: 'job.status',
        ref,
        jobId: job.jobId,
        attempt: job.attempt,
        at: new Date().toISOString(),
        status: status as 'Running',
        minorStatus,
        ...extra,
      });
    report(1, 'Running', 'Application');
    assert.equal((await pilot.next('ack')).ref, 1);
    report(2, 'Completing', 'Application Finished Successfully');
    assert.equal((await pilot.next('ack')).ref, 2);
    report(3, 'Done', 'Execution Complete', { exitCode: 0 });
    assert.equal((await pilot.next('ack')).ref, 3);
    const body = (await m.api('GET', `/api/jobs/${jobId}`)).body;
    assert.equal(body.status, 'Done');
    assert.equal(body.exitCode, 0);
    assert.deepEqual(
      body.history.map((h: { status: string }) => h.status),
      ['Received', 'Checking', 'Waiting', 'Matched', 'Running', 'Completing', 'Done'],
    );
    assert.ok(body.startedAt && body.endedAt);
  });

  it('reports sent back to back are applied in order and acked in order; a refused one among them gets its error', async () => {
    const [jobId, otherId] = await submit([
      { executable: 'echo' },
      { executable: 'other', requirements: { sites: ['Nowhere'] } },
    ]);
    const pilot = await connect('burst');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    const { job } = await pilot.next('match');
    assert.equal(job.jobId, jobId);
    const at = () => new Date().toISOString();
    const base = { type: 'job.status' as const, jobId: job.jobId, attempt: job.attempt };
    // One burst, no waiting between frames (as a pilot whose job ended at once): the matcher pipelines
    // them into one commit where its store allows, and must keep their order.
    pilot.send({ ...base, ref: 1, at: at(), status: 'Running', minorStatus: 'Application' });
    pilot.send({ type: 'job.status', ref: 2, jobId: otherId as number, attempt: 1, at: at(), status: 'Running' });
    pilot.send({ ...base, ref: 3, at: at(), status: 'Completing', minorStatus: 'Uploading Output Sandbox' });
    pilot.send({ ...base, ref: 4, at: at(), status: 'Done', minorStatus: 'Execution Complete', exitCode: 0 });
    pilot.send({ type: 'offer', offerId: 'o2', matchSeq: 1, resources: resources() });
    const answers: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      const message = await pilot.next('ack', 'error', 'parked', 'match');
      answers.push(
        message.type === 'ack'
          ? `ack ${message.ref}`
          : message.type === 'error'
            ? `error ${message.ref} ${message.code}`
            : message.type,
      );
    }
    assert.deepEqual(
      answers.filter((a) => a.startsWith('ack')),
      ['ack 1', 'ack 3', 'ack 4'],
    );
    assert.ok(answers.includes('error 2 FORBIDDEN'), answers.join(', '));
    assert.ok(answers.includes('parked'), answers.join(', '));
    const body = (await m.api('GET', `/api/jobs/${jobId}`)).body;
    assert.equal(body.status, 'Done');
    assert.deepEqual(body.history.map((h: { status: string }) => h.status).slice(3), [
      'Matched',
      'Running',
      'Completing',
      'Done',
    ]);
    assert.equal((await m.api('GET', `/api/jobs/${otherId}`)).body.status, 'Waiting');
  });

  it('the output a final report carries is stored with it: whoever sees the job final sees its last output', async () => {
    const [jobId] = await submit({ executable: 'echo' });
    const pilot = await connect('tail');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    const { job } = await pilot.next('match');
    // Look at the job's output the moment its reports are stored, as a `logs --follow` polling then would.
    const store = m.matcher.store;
    const reportStatuses = store.reportStatuses.bind(store);
    let outputWhenStored: string | null | undefined;
    store.reportStatuses = async (...args) => {
      const outcomes = await reportStatuses(...args);
      outputWhenStored = (await store.getOutputTail(jobId as number))?.stdout ?? null;
      return outcomes;
    };
    const now = Date.now();
    pilot.send({
      type: 'job.status',
      ref: 1,
      jobId: job.jobId,
      attempt: job.attempt,
      at: new Date(now + 20).toISOString(),
      status: 'Done',
      minorStatus: 'Execution Complete',
      exitCode: 0,
      outputTail: { stdout: 'first-line\nsecond-line\n', stderr: '' },
      earlier: [{ at: new Date(now + 10).toISOString(), status: 'Running', minorStatus: 'Application' }],
    });
    assert.equal((await pilot.next('ack')).ref, 1);
    assert.equal(outputWhenStored, 'first-line\nsecond-line\n');
  });

  it("a frame carrying a short job's reports (earlier + its own) applies each in order, is acked once and replays as a no-op", async () => {
    const [jobId] = await submit({ executable: 'echo' });
    const pilot = await connect('short');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    const { job } = await pilot.next('match');
    const at = (ms: number) => new Date(Date.parse('2026-12-01T10:00:00Z') + ms).toISOString();
    const frame = {
      type: 'job.status' as const,
      ref: 7,
      jobId: job.jobId,
      attempt: job.attempt,
      at: at(30),
      status: 'Done' as const,
      minorStatus: 'Execution Complete',
      exitCode: 0,
      outputTail: { stdout: 'hello\n', stderr: '' },
      earlier: [
        { at: at(10), status: 'Running' as const, minorStatus: 'Application' },
        { at: at(20), status: 'Completing' as const, minorStatus: 'Uploading Output Sandbox' },
      ],
    };
    pilot.send(frame);
    assert.equal((await pilot.next('ack')).ref, 7);
    const body = (await m.api('GET', `/api/jobs/${jobId}`)).body;
    assert.deepEqual([body.status, body.exitCode, body.startedAt, body.endedAt], ['Done', 0, at(10), at(30)]);
    const history = () =>
      m
        .api('GET', `/api/jobs/${jobId}`)
        .then((r) => r.body.history.slice(3).map((h: { status: string; at: string }) => `${h.status} ${h.at}`));
    const expected = [`Running ${at(10)}`, `Completing ${at(20)}`, `Done ${at(30)}`];
    assert.deepEqual((await history()).slice(1), expected);
    assert.equal((await m.api('GET', `/api/jobs/${jobId}/logs`)).body.outputTail.stdout, 'hello\n');
    pilot.send({ ...frame, ref: 8 }); // replayed after a reconnect, say
    assert.equal((await pilot.next('ack')).ref, 8);
    assert.deepEqual((await history()).slice(1), expected, 'nothing recorded twice');
    // Bad frames: an empty earlier list, a nested earlier, more reports than a frame may carry.
    for (const bad of [
      { ...frame, ref: 9, earlier: [] },
      { ...frame, ref: 10, earlier: [{ ...frame.earlier[0], earlier: [] }] },
      { ...frame, ref: 11, earlier: Array.from({ length: 101 }, () => frame.earlier[0]) },
    ]) {
      pilot.send(bad as typeof frame);
      const error = await pilot.next('error');
      assert.equal(error.code, 'PROTOCOL_VIOLATION');
      assert.match(error.message, /earlier/);
    }
  });

  it('a pilot may not report on a job it does not hold, nor on another attempt', async () => {
    const [jobId] = await submit({ executable: 'echo' });
    const holder = await connect('holder');
    holder.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    await holder.next('match');
    const intruder = await connect('intruder');
    intruder.send({
      type: 'job.status',
      ref: 7,
      jobId: jobId as number,
      attempt: 1,
      at: new Date().toISOString(),
      status: 'Failed',
    });
    const refused = await intruder.next('error');
    assert.equal(refused.code, 'FORBIDDEN');
    assert.equal(refused.ref, 7);
    holder.send({
      type: 'job.status',
      ref: 8,
      jobId: jobId as number,
      attempt: 2,
      at: new Date().toISOString(),
      status: 'Running',
    });
    assert.equal((await holder.next('error')).code, 'ATTEMPT_MISMATCH');
    assert.equal((await m.api('GET', `/api/jobs/${jobId}`)).body.status, 'Matched');
  });

  it('an offer with maxJobs is filled by several jobs, one match frame each, the best TQ first and then what is left', async () => {
    const twoCore = await submit([
      { executable: 'two-a', requirements: { cores: { min: 2 } } },
      { executable: 'two-b', requirements: { cores: { min: 2 } } },
      { executable: 'two-c', requirements: { cores: { min: 2 } } },
    ]);
    const [oneCore] = await submit({ executable: 'one' });
    const pilot = await connect('p1');
    // 5 cores: two 2-core jobs fill 4 (the third does not fit), the last core takes the 1-core job.
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources(5), maxJobs: 8 });
    const frames = [await pilot.next('match')];
    while ((frames.at(-1)?.following ?? 0) > 0) frames.push(await pilot.next('match'));
    assert.deepEqual(
      frames.map((f) => [f.offerId, f.matchSeq, f.job.cores]),
      [
        ['o1', 1, 2],
        ['o1', 2, 2],
        ['o1', 3, 1],
      ],
    );
    assert.deepEqual(
      frames.map((f) => f.following),
      [2, 1, undefined],
      'each frame but the last says how many follow',
    );
    const matched = frames.map((f) => f.job.jobId).sort((a, b) => a - b);
    assert.deepEqual(
      matched,
      [twoCore[0], twoCore[1], oneCore].sort((a, b) => (a ?? 0) - (b ?? 0)),
    );
    for (const jobId of matched) {
      const job = (await m.api('GET', `/api/jobs/${jobId}`)).body;
      assert.equal(job.status, 'Matched');
      assert.equal(job.pilotId, 'p1');
    }
    assert.equal((await m.api('GET', `/api/jobs/${twoCore[2]}`)).body.status, 'Waiting');
    assert.equal(pilot.pending('match') + pilot.pending('parked'), 0);
    // maxJobs bounds the count even when more fit: 1 core left in this pilot's eyes, it asks for 1.
    pilot.send({ type: 'offer', offerId: 'o2', matchSeq: 3, resources: resources(8), maxJobs: 1 });
    const single = await pilot.next('match');
    assert.equal(single.job.jobId, twoCore[2]);
    assert.equal(single.following, undefined);
  });

  it('a parked offer with maxJobs takes a bulk submission as several matches pushed at once', async () => {
    const pilot = await connect('p1');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources(4), maxJobs: 4 });
    await pilot.next('parked');
    const jobIds = await submit([{ executable: 'a' }, { executable: 'b' }, { executable: 'c' }]);
    const frames = [await pilot.next('match')];
    while ((frames.at(-1)?.following ?? 0) > 0) frames.push(await pilot.next('match'));
    assert.deepEqual(
      frames.map((f) => f.job.jobId).sort((a, b) => a - b),
      jobIds,
    );
    assert.deepEqual(
      frames.map((f) => f.matchSeq),
      [1, 2, 3],
    );
  });

  it('job.statuses stores several attempts in one frame, acked once; an attempt refused for good is named in the ack', async () => {
    await submit([{ executable: 'a' }, { executable: 'b' }]);
    const [foreign] = await submit({ executable: 'c', requirements: { cores: { min: 3 } } });
    const pilot = await connect('p1');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources(2), maxJobs: 2 });
    const first = await pilot.next('match');
    const second = await pilot.next('match');
    const other = await connect('p2');
    other.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources(4) });
    assert.equal((await other.next('match')).job.jobId, foreign);
    const at = new Date().toISOString();
    const done = (jobId: number, attempt: number) => ({
      jobId,
      attempt,
      at,
      status: 'Done' as const,
      exitCode: 0,
      earlier: [{ at, status: 'Running' as const }],
    });
    pilot.send({
      type: 'job.statuses',
      ref: 5,
      reports: [
        done(first.job.jobId, first.job.attempt),
        done(foreign as number, 1),
        done(second.job.jobId, 2),
        done(second.job.jobId, second.job.attempt),
      ],
    });
    const ack = await pilot.next('ack', 'error');
    assert.equal(ack.type, 'ack');
    assert.equal(ack.ref, 5);
    assert.deepEqual(
      (ack.type === 'ack' ? (ack.refused ?? []) : []).map((r) => [r.jobId, r.attempt, r.code]),
      [
        [foreign, 1, 'FORBIDDEN'],
        [second.job.jobId, 2, 'ATTEMPT_MISMATCH'],
      ],
    );
    for (const jobId of [first.job.jobId, second.job.jobId]) {
      const job = (await m.api('GET', `/api/jobs/${jobId}`)).body;
      assert.equal(job.status, 'Done');
      assert.deepEqual(
        job.history.map((h: { status: string }) => h.status),
        ['Received', 'Checking', 'Waiting', 'Matched', 'Running', 'Done'],
      );
    }
    assert.equal(
      (await m.api('GET', `/api/jobs/${foreign}`)).body.status,
      'Matched',
      "another pilot's job is untouched",
    );
    // A replay of the same frame (the pilot reconnected before the ack) changes nothing and is acked.
    pilot.send({ type: 'job.statuses', ref: 6, reports: [done(first.job.jobId, first.job.attempt)] });
    const replayed = await pilot.next('ack');
    assert.equal(replayed.ref, 6);
    assert.equal(replayed.refused, undefined);
    assert.equal((await m.api('GET', `/api/jobs/${first.job.jobId}`)).body.history.length, 6);
  });

  it('an offer built before the latest match is stale and dropped', async () => {
    await submit([{ executable: 'a' }, { executable: 'b' }]);
    const pilot = await connect('p1');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources(2) });
    await pilot.next('match');
    pilot.send({ type: 'offer', offerId: 'stale', matchSeq: 0, resources: resources(2) });
    pilot.send({ type: 'offer', offerId: 'fresh', matchSeq: 1, resources: resources(1) });
    const second = await pilot.next('match');
    assert.equal(second.offerId, 'fresh');
    assert.equal(pilot.pending('match') + pilot.pending('parked'), 0);
  });

  it('a kill reaches the pilot holding the job at once, fenced by attempt', async () => {
    const [jobId] = await submit({ executable: 'sleep', arguments: ['100'] });
    const pilot = await connect('p1');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    await pilot.next('match');
    pilot.sendStatus(1, jobId as number, 1, 'Running');
    await pilot.next('ack');
    const kill = await m.api('POST', `/api/jobs/${jobId}/kill`);
    assert.equal(kill.status, 200);
    assert.equal(kill.body.status, 'Killed');
    const { commands } = await pilot.next('commands');
    assert.deepEqual(commands, [{ jobId, attempt: 1, command: 'kill' }]);
    pilot.send({
      type: 'heartbeat',
      ref: 2,
      jobs: [{ jobId: jobId as number, attempt: 1, cpuSec: 1, rssMB: 1, wallSec: 1 }],
    });
    await pilot.next('ack');
    assert.equal(pilot.pending('commands'), 0, 'the command is delivered once');
  });

  it('a heartbeat for an attempt that was rescheduled away gets a kill for that attempt', async () => {
    const [jobId] = await submit({ executable: 'sleep', arguments: ['100'] });
    const pilot = await connect('p1');
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    await pilot.next('match');
    // The sweeper ended attempt 1 while the pilot was silent (here: straight through the store).
    const outcome = await m.matcher.store.rescheduleJob(jobId as number, 1, {
      at: new Date().toISOString(),
      reason: 'Job stalled: pilot not running',
      holdUntil: new Date().toISOString(),
      maxAttempts: 3,
      source: 'FaultSweeper',
      onLimit: 'fail' as const,
      allowFinished: false,
    });
    assert.equal(outcome.kind, 'rescheduled');
    pilot.send({
      type: 'heartbeat',
      ref: 1,
      jobs: [{ jobId: jobId as number, attempt: 1, cpuSec: 1, rssMB: 1, wallSec: 1 }],
    });
    await pilot.next('ack');
    const { commands } = await pilot.next('commands');
    assert.deepEqual(commands, [{ jobId, attempt: 1, command: 'kill' }]);
    assert.equal((await m.api('GET', `/api/jobs/${jobId}`)).body.attempt, 2, 'the new attempt is untouched');
  });

  it(
    'a reconnecting pilot gives back the matches it never received; those it holds stay its own',
    { timeout: 20_000 },
    async () => {
      const [lostId, keptId] = await submit([{ executable: 'lost' }, { executable: 'kept' }]);
      const first = await connect('p1');
      first.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
      const lost = (await first.next('match')).job;
      first.send({ type: 'offer', offerId: 'o2', matchSeq: 1, resources: resources() });
      const kept = (await first.next('match')).job;
      assert.deepEqual([lost.jobId, kept.jobId], [lostId, keptId]);
      await first.close();
      // Another pilot waits for work: the job given back must reach it at once.
      const other = await connect('p2');
      other.send({ type: 'offer', offerId: 'x1', matchSeq: 0, resources: resources() });
      await other.next('parked');

      const again = await RawPilot.connect(m.url, await m.pilotToken('local'), {
        stamp: 'p1',
        holding: [{ jobId: kept.jobId, attempt: kept.attempt }],
      });
      pilots.push(again);
      const pushed = await other.next('match');
      assert.equal(pushed.job.jobId, lostId);
      assert.equal(pushed.job.attempt, 2, 'a new attempt: the first one can never report');
      const history = (await m.api('GET', `/api/jobs/${lostId}`)).body.history as { minorStatus: string }[];
      assert.ok(history.some((h) => h.minorStatus === 'Match lost: the pilot never received it'));
      const keptView = (await m.api('GET', `/api/jobs/${keptId}`)).body;
      assert.equal(keptView.status, 'Matched');
      assert.equal(keptView.pilotId, 'p1');
      assert.equal(keptView.attempt, 1);
    },
  );

  it('a pilot that does not say what it holds (an older pilot) keeps its matched jobs', async () => {
    const [jobId] = await submit({ executable: 'echo' });
    const first = await connect('p1');
    first.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    await first.next('match');
    await first.close();
    await connect('p1');
    const view = (await m.api('GET', `/api/jobs/${jobId}`)).body;
    assert.equal(view.status, 'Matched');
    assert.equal(view.attempt, 1);
  });

  it('malformed frames get PROTOCOL_VIOLATION; a foreign protocol version closes the socket', async () => {
    const pilot = await connect('p1');
    pilot.sendRaw('not json');
    assert.equal((await pilot.next('error')).code, 'PROTOCOL_VIOLATION');
    pilot.sendRaw(JSON.stringify({ type: 'offer', v: 1, offerId: 'x' }));
    assert.equal((await pilot.next('error')).code, 'PROTOCOL_VIOLATION');
    const closed = once(pilot.ws, 'close');
    pilot.sendRaw(JSON.stringify({ type: 'bye', v: 99, reason: 'x' }));
    assert.equal((await pilot.next('error')).code, 'PROTOCOL_VERSION');
    const [code] = await closed;
    assert.equal(code, 1008);
  });

  it('a pilot token bound to a site cannot say hello from another site', async () => {
    const token = await m.pilotToken('local', 'Site.A');
    const pilot = new RawPilot(m.url, token);
    pilots.push(pilot);
    await once(pilot.ws, 'open');
    pilot.send({
      type: 'hello',
      pilotStamp: 'p9',
      pilotVersion: 't',
      site: 'Site.B',
      ce: null,
      queue: null,
      node: { hostname: 'h', cores: 1, memoryMB: 1, os: 'l', arch: 'x', cpuModel: 'c' },
    });
    assert.equal((await pilot.next('error')).code, 'FORBIDDEN');
  });

  it('concurrent pilots never receive the same job', async () => {
    const ids = await submit(Array.from({ length: 60 }, (_, i) => ({ executable: `job${i}` })));
    const fleet = await Promise.all(Array.from({ length: 6 }, (_, i) => connect(`p${i}`)));
    const received: number[] = [];
    await Promise.all(
      fleet.map(async (pilot) => {
        for (let seq = 0; ; seq += 1) {
          pilot.send({ type: 'offer', offerId: `o${seq}`, matchSeq: seq, resources: resources() });
          const answer = await pilot.next('match', 'parked');
          if (answer.type === 'parked') return;
          received.push(answer.job.jobId);
        }
      }),
    );
    assert.equal(received.length, ids.length);
    assert.deepEqual(
      [...received].sort((a, b) => a - b),
      ids,
    );
  });
});
