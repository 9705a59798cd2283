import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { silentLogger } from '../../shared/logger.ts';
import { PilothouseError } from '../../shared/errors.ts';
import { PilotLoop, type LoopConfig } from '../../pilot/loop.ts';
import { Slot, type SlotOptions } from '../../pilot/slot.ts';
import { FakeClock, FakeLink, FakeRunner, matchedJob } from './fakes.ts';

interface Harness {
  link: FakeLink;
  runner: FakeRunner;
  clock: FakeClock;
  loop: PilotLoop;
}

function harness(
  slot: Partial<SlotOptions> = {},
  config: Partial<LoopConfig> = {},
  nodeStatus?: () => { load1: number; diskFreeMB: number | null },
): Harness {
  const link = new FakeLink();
  const runner = new FakeRunner();
  const clock = new FakeClock();
  let offers = 0;
  const loop = new PilotLoop({
    link,
    runner,
    clock,
    logger: silentLogger(),
    slot: new Slot({
      cores: 4,
      memoryMB: 8000,
      wallTimeSec: null,
      startMs: clock.now,
      tags: ['gpu-less'],
      offerWallTimeMarginSec: 60,
      minOfferWallTimeSec: 60,
      ...slot,
    }),
    config: {
      idleTimeoutMs: 60_000,
      offerCancelTimeoutMs: 60_000,
      finalFlushTimeoutMs: 60_000,
      offerRefreshMs: 60_000,
      ...config,
    },
    newOfferId: () => `offer-${++offers}`,
    ...(nodeStatus === undefined ? {} : { nodeStatus }),
  });
  return { link, runner, clock, loop };
}

/** Starts the loop and completes the handshake; resolves with the first offer. */
async function connected(h: Harness) {
  const firstOffer = h.link.next('offer');
  const exited = h.loop.run();
  assert.equal(h.link.started, true);
  h.link.welcome();
  return { exited, offer: await firstOffer };
}

test('offers the whole slot on connect, then what is left after each match with the new matchSeq', async () => {
  const h = harness();
  const { offer, exited } = await connected(h);
  assert.deepEqual(offer, {
    type: 'offer',
    offerId: 'offer-1',
    matchSeq: 0,
    resources: { cores: 4, memoryMB: 8000, wallTimeSec: null, tags: ['gpu-less'] },
    maxJobs: 4,
  });

  const parked = once(h.loop, 'offer-parked');
  h.link.deliver({ type: 'parked', offerId: 'offer-1' });
  await parked;

  const second = h.link.next('offer');
  h.link.deliver({
    type: 'match',
    offerId: 'offer-1',
    matchSeq: 1,
    job: matchedJob(7, {
      cores: 3,
      description: { executable: 'true', requirements: { cores: { min: 2, max: 3 }, memoryMB: 3000 } },
    }),
  });
  assert.deepEqual((await second).resources, { cores: 1, memoryMB: 5000, wallTimeSec: null, tags: ['gpu-less'] });
  assert.equal((await second).matchSeq, 1);
  assert.equal((await second).maxJobs, 1, 'one free core: one job');
  assert.equal(h.runner.jobs.length, 1);

  // The status callback becomes a job.status report naming job and attempt, with a time.
  const report = h.link.ofType('job.status')[0];
  assert.equal(report?.body.jobId, 7);
  assert.equal(report?.body.attempt, 1);
  assert.equal(report?.body.status, 'Running');
  assert.equal(report?.body.at, new Date(h.clock.now).toISOString());

  h.loop.terminate();
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-2' });
  await exited;
});

test('sends no offer while the slot is full, and offers again when a job ends', async () => {
  const h = harness({ cores: 2 });
  const { exited } = await connected(h);
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(1, { cores: 2 }) });
  assert.equal(h.link.ofType('offer').length, 1, 'full: no second offer');

  const next = h.link.next('offer');
  h.runner.jobs[0]?.finish();
  const offer = await next;
  assert.equal(offer.resources.cores, 2);
  assert.equal(offer.matchSeq, 1);
  assert.equal(offer.offerId, 'offer-2');
  h.loop.drain();
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-2' });
  assert.equal((await exited).reason, 'drained');
});

test('a job that ends while an offer is parked supersedes it with a bigger offer', async () => {
  const h = harness({ cores: 2 });
  const { exited } = await connected(h);
  const afterMatch = h.link.next('offer');
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(1) });
  const parkedOffer = await afterMatch;
  assert.equal(parkedOffer.resources.cores, 1);
  h.link.deliver({ type: 'parked', offerId: parkedOffer.offerId });

  const superseding = h.link.next('offer');
  h.runner.jobs[0]?.finish();
  const offer = await superseding;
  assert.notEqual(offer.offerId, parkedOffer.offerId);
  assert.equal(offer.resources.cores, 2);
  assert.equal(h.link.ofType('offer.cancel').length, 0, 'superseding needs no cancel');
  h.loop.terminate();
  h.link.deliver({ type: 'offer.cancelled', offerId: offer.offerId });
  await exited;
});

test('a match for an older offer makes the outstanding one stale: a fresh offer follows', async () => {
  const h = harness({ cores: 3 });
  const { exited } = await connected(h);
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(1) });
  assert.equal(h.link.ofType('offer').at(-1)?.offerId, 'offer-2');
  // The matcher answers a superseded offer (race): offer-2 was built with matchSeq 1, now stale.
  const next = h.link.next('offer');
  h.link.deliver({ type: 'match', offerId: 'offer-1b', matchSeq: 2, job: matchedJob(2) });
  const offer = await next;
  assert.equal(offer.matchSeq, 2);
  assert.equal(offer.resources.cores, 1);
  h.loop.terminate();
  h.link.deliver({ type: 'offer.cancelled', offerId: offer.offerId });
  await exited;
});

test('no-match: offers again after retryAfterMs', async () => {
  const h = harness();
  const { exited } = await connected(h);
  const retried = h.link.next('offer');
  h.link.deliver({ type: 'no-match', offerId: 'offer-1', retryAfterMs: 5 });
  assert.equal(h.link.ofType('offer').length, 1, 'not before the delay');
  const offer = await retried;
  assert.equal(offer.offerId, 'offer-2');
  assert.equal(offer.matchSeq, 0);
  h.loop.drain();
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-2' });
  await exited;
});

test('kill commands reach only the named attempt', async () => {
  const h = harness();
  const { exited } = await connected(h);
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(5, { attempt: 2 }) });
  const job = h.runner.jobs[0];
  assert.ok(job);
  h.link.deliver({ type: 'commands', commands: [{ jobId: 5, attempt: 1, command: 'kill' }] });
  assert.deepEqual(job.killedWith, []);
  const finished = once(h.loop, 'job-finished');
  h.link.deliver({ type: 'commands', commands: [{ jobId: 5, attempt: 2, command: 'kill' }] });
  assert.deepEqual(job.killedWith, ['command']);
  const [event] = (await finished) as [{ outcome: { minorStatus: string } }];
  assert.equal(event.outcome.minorStatus, 'Received Kill signal');
  h.loop.terminate();
  h.link.deliver({ type: 'offer.cancelled', offerId: h.link.ofType('offer.cancel')[0]?.offerId ?? '' });
  await exited;
});

test('drain: cancels the parked offer, runs a match that races the cancel, waits for acks, says bye', async () => {
  const h = harness();
  h.link.autoAck = false;
  const { exited } = await connected(h);
  h.link.deliver({ type: 'parked', offerId: 'offer-1' });

  const cancel = h.link.next('offer.cancel');
  h.loop.drain();
  assert.equal((await cancel).offerId, 'offer-1');

  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(9) });
  assert.equal(h.runner.jobs.length, 1, 'the racing match is run');
  assert.equal(h.link.ofType('offer').length, 1, 'no new offer while draining');
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-1' });

  h.runner.jobs[0]?.finish();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(h.link.closedWith, null, 'waits for the final reports to be acked');
  const bye = h.link.next('bye');
  h.link.ackAll();
  assert.equal((await bye).reason, 'drained');
  const exit = await exited;
  assert.equal(exit.reason, 'drained');
  assert.equal(exit.jobsRun, 1);
  assert.equal(exit.undeliveredReports, 0);
  assert.deepEqual(h.link.ofType('job.status').at(-1)?.body.status, 'Done');
});

test('idle timeout: cancels the parked offer and exits with reason idle', async () => {
  const h = harness({}, { idleTimeoutMs: 20 });
  const { exited } = await connected(h);
  h.link.deliver({ type: 'parked', offerId: 'offer-1' });
  h.clock.now += 20; // the timer is real; the idle time it checks comes from the injected clock
  const cancel = await h.link.next('offer.cancel');
  h.link.deliver({ type: 'offer.cancelled', offerId: cancel.offerId });
  const exit = await exited;
  assert.equal(exit.reason, 'idle');
  assert.equal(exit.everConnected, true);
  assert.equal(h.link.closedWith, 'idle');
});

test('offers wall time left minus the margin, and stops offering when too little is left', async () => {
  const h = harness({ wallTimeSec: 1000 });
  const { offer, exited } = await connected(h);
  assert.equal(offer.resources.wallTimeSec, 940);

  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(1) });
  assert.equal(h.link.ofType('offer').at(-1)?.resources.wallTimeSec, 940);
  h.clock.now += 800_000; // 200 s left: 140 s to offer
  h.link.deliver({ type: 'match', offerId: 'offer-2', matchSeq: 2, job: matchedJob(2) });
  assert.equal(h.link.ofType('offer').at(-1)?.resources.wallTimeSec, 140);

  h.clock.now += 100_000; // 100 s left: 40 s after the margin, below the 60 s minimum
  const draining = once(h.loop, 'draining');
  h.link.deliver({ type: 'match', offerId: 'offer-3', matchSeq: 3, job: matchedJob(3) });
  assert.deepEqual(await draining, [{ reason: 'time-left' }]);
  assert.equal(h.link.ofType('offer').length, 3);
  for (const job of h.runner.jobs) job.finish();
  const exit = await exited;
  assert.equal(exit.reason, 'time-left');
  assert.equal(exit.jobsRun, 3);
});

test('terminate kills running jobs with pilot-terminated', async () => {
  const h = harness();
  const { exited } = await connected(h);
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(1) });
  h.link.deliver({ type: 'match', offerId: 'offer-2', matchSeq: 2, job: matchedJob(2) });
  h.loop.drain();
  assert.deepEqual(
    h.runner.jobs.map((job) => job.killedWith),
    [[], []],
    'drain lets jobs run',
  );
  h.loop.terminate();
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-3' });
  assert.deepEqual(
    h.runner.jobs.map((job) => job.killedWith),
    [['pilot-terminated'], ['pilot-terminated']],
  );
  assert.equal((await exited).reason, 'terminated');
});

test('after a reconnect the loop offers again what is free, counting matches afresh for the new connection', async () => {
  const h = harness();
  const { exited } = await connected(h);
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(1) });
  h.link.deliver({ type: 'parked', offerId: 'offer-2' });
  h.link.drop();
  assert.deepEqual(h.link.heldJobs(), [{ jobId: 1, attempt: 1 }], 'the next hello says the pilot holds job 1');
  const again = h.link.next('offer');
  h.link.welcome();
  const offer = await again;
  assert.equal(offer.offerId, 'offer-3');
  assert.equal(offer.matchSeq, 0, 'the matcher counts matches per connection');
  assert.equal(offer.resources.cores, 3);
  const next = h.link.next('offer');
  h.link.deliver({ type: 'match', offerId: 'offer-3', matchSeq: 1, job: matchedJob(2) });
  assert.equal((await next).matchSeq, 1);
  h.loop.terminate();
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-4' });
  await exited;
});

test('heartbeats carry the running jobs at the welcome interval', async () => {
  const h = harness();
  const exited = h.loop.run();
  const firstOffer = h.link.next('offer');
  h.link.welcome('pilot-1', 5);
  await firstOffer;
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(3) });
  const beat = await h.link.next('heartbeat');
  assert.deepEqual(beat.jobs, [{ jobId: 3, attempt: 1, cpuSec: 1.5, rssMB: 10, wallSec: 2 }]);
  assert.equal(beat.matchSeq, 1, 'with the matches received on this connection when the jobs were listed');
  h.loop.terminate();
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-2' });
  await exited;
});

test('a fatal link error ends the loop with the error and kills running jobs', async () => {
  const h = harness();
  const { exited } = await connected(h);
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(1) });
  h.link.connected = false;
  h.link.emit('fatal', new PilothouseError('TOKEN_INVALID', 'refused'));
  const exit = await exited;
  assert.equal(exit.reason, 'link-failed');
  assert.equal(exit.error?.code, 'TOKEN_INVALID');
  assert.deepEqual(h.runner.jobs[0]?.killedWith, ['pilot-terminated']);
});

test('a duplicate match for a running attempt is not run twice', async () => {
  const h = harness();
  const { exited } = await connected(h);
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(1) });
  h.link.deliver({ type: 'match', offerId: 'offer-2', matchSeq: 2, job: matchedJob(1) });
  assert.equal(h.runner.jobs.length, 1);
  h.loop.terminate();
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-3' });
  await exited;
});

test("the matcher's memory grant, when sent, is what the slot holds", async () => {
  const h = harness();
  const { exited } = await connected(h);
  const next = h.link.next('offer');
  const job = {
    ...matchedJob(4, { description: { executable: 'true', requirements: { memoryMB: 100 } } }),
    memoryMB: 2500,
  };
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job });
  assert.equal((await next).resources.memoryMB, 8000 - 2500);
  h.loop.terminate();
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-2' });
  await exited;
});

test('with a finite time left, a parked offer is renewed so its wall time stays true', async () => {
  const h = harness({ wallTimeSec: 3600 }, { offerRefreshMs: 5 });
  const { offer, exited } = await connected(h);
  h.link.deliver({ type: 'parked', offerId: offer.offerId });
  const renewed = h.link.next('offer');
  h.clock.now += 600_000;
  const next = await renewed;
  assert.notEqual(next.offerId, offer.offerId);
  assert.equal(next.resources.wallTimeSec, 3000 - 60);
  h.loop.drain();
  const cancel = h.link.ofType('offer.cancel').at(-1);
  h.link.deliver({ type: 'offer.cancelled', offerId: cancel?.offerId ?? '' });
  await exited;
});

test('matches that fill one offer together start every job, and the next offer waits for the last of them', async () => {
  const h = harness();
  const { offer, exited } = await connected(h);
  assert.equal(offer.maxJobs, 4);
  const oneCore = (jobId: number) =>
    matchedJob(jobId, { cores: 1, description: { executable: 'true', requirements: { memoryMB: 1000 } } });
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: oneCore(1), following: 2 });
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 2, job: oneCore(2), following: 1 });
  // Two of three have come: the slot has room, but an offer now would be stale when it arrives.
  assert.equal(h.link.ofType('offer').length, 1);
  assert.equal(h.runner.jobs.length, 2);
  const next = h.link.next('offer');
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 3, job: oneCore(3) });
  const { resources, matchSeq, maxJobs } = await next;
  assert.equal(h.runner.jobs.length, 3);
  assert.deepEqual([resources.cores, resources.memoryMB, matchSeq, maxJobs], [1, 5000, 3, 1]);
  assert.equal(h.link.ofType('offer').length, 2);
  h.loop.terminate();
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-2' });
  await exited;
});

test('an unreadable match is counted and its attempt failed at once', async () => {
  const h = harness();
  const { exited } = await connected(h);
  const next = h.link.next('offer');
  h.link.deliver({
    type: 'match.unreadable',
    offerId: 'offer-1',
    matchSeq: 1,
    following: 0,
    jobId: 12,
    attempt: 3,
    reason: 'invalid frame: job.description.requirements Unrecognized key',
  });
  const offer = await next;
  assert.equal(offer.matchSeq, 1, 'counted like a match');
  assert.equal(offer.resources.cores, 4, 'nothing runs');
  assert.equal(h.runner.jobs.length, 0);
  const report = h.link.ofType('job.status')[0]?.body;
  assert.deepEqual(
    [report?.jobId, report?.attempt, report?.status, report?.minorStatus],
    [12, 3, 'Failed', 'Job description not understood by the pilot'],
  );
  h.loop.drain();
  h.link.deliver({ type: 'offer.cancelled', offerId: offer.offerId });
  await exited;
});

test("the matcher's drain: no more offers, running jobs finish, bye says drain-command with the counts", async () => {
  const h = harness();
  const { exited } = await connected(h);
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(1) });
  h.link.deliver({ type: 'match', offerId: 'offer-2', matchSeq: 2, job: matchedJob(2) });
  const cancel = h.link.next('offer.cancel');
  h.link.deliver({ type: 'drain', reason: 'kernel update' });
  assert.equal(h.loop.draining, true);
  h.link.deliver({ type: 'offer.cancelled', offerId: (await cancel).offerId });
  const offers = h.link.ofType('offer').length;
  h.runner.jobs[0]?.finish();
  h.runner.jobs[1]?.finish({
    status: 'Failed',
    minorStatus: 'Application Finished With Errors (exit code 1)',
    exitCode: 1,
  });
  const exit = await exited;
  assert.equal(h.link.ofType('offer').length, offers, 'no offer after the drain, not even when jobs end');
  assert.deepEqual([exit.reason, exit.jobsRun, exit.jobsFailed], ['drain-command', 2, 1]);
  assert.deepEqual(h.link.ofType('bye')[0], {
    type: 'bye',
    reason: 'drain-command',
    stats: { jobsRun: 2, jobsFailed: 1 },
  });
});

test('the drain grace: jobs still running when it is over are killed with drain-timeout', async () => {
  const h = harness({}, { drainGraceMs: 5 });
  const { exited } = await connected(h);
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(1) });
  h.loop.drain('drain-file');
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-2' });
  const exit = await exited;
  assert.deepEqual(h.runner.jobs[0]?.killedWith, ['drain-timeout']);
  assert.deepEqual([exit.reason, exit.jobsFailed], ['drain-file', 1]);
});

test("the drain grace never reaches past the slot's end", async () => {
  const h = harness({ wallTimeSec: 3600 }, { drainGraceMs: 3_600_000, slotEndMarginMs: 30_000 });
  const { exited } = await connected(h);
  h.link.deliver({ type: 'match', offerId: 'offer-1', matchSeq: 1, job: matchedJob(1) });
  h.clock.now += 3_570_000; // 30 s left, all of it margin: the grace is over at once
  h.loop.drain('drained');
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-2' });
  await exited;
  assert.deepEqual(h.runner.jobs[0]?.killedWith, ['drain-timeout']);
});

test("heartbeats carry the node's load and free disk when the pilot knows them", async () => {
  const h = harness({}, {}, () => ({ load1: 1.5, diskFreeMB: 1234 }));
  const beat = h.link.next('heartbeat');
  const exited = h.loop.run();
  h.link.welcome('pilot-1', 5);
  assert.deepEqual((await beat).node, { load1: 1.5, diskFreeMB: 1234 });
  h.loop.terminate();
  h.link.deliver({ type: 'offer.cancelled', offerId: 'offer-1' });
  await exited;
});
