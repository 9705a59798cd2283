import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { MatcherEndpoints } from '../../shared/endpoints.ts';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { createLogger, silentLogger } from '../../shared/logger.ts';
import type { PilothouseError } from '../../shared/errors.ts';
import { WsMatcherLink, type JobStatusBody, type LinkInbound } from '../../pilot/matcher-link.ts';
import { MiniMatcher } from './mini-matcher.ts';
import type { PilotMessage } from '../../shared/protocol/messages.ts';
import { matchedJob } from './fakes.ts';

const node = { hostname: 'wn01', cores: 4, memoryMB: 8000, os: 'Linux', arch: 'x64', cpuModel: 'cpu' };
const links: WsMatcherLink[] = [];
const matchers: MiniMatcher[] = [];

after(async () => {
  await Promise.all(links.map((link) => link.close('test over')));
  await Promise.all(matchers.map((matcher) => matcher.close()));
});

async function setup(
  autoWelcome = true,
  extra: Partial<ConstructorParameters<typeof WsMatcherLink>[0]> = {},
): Promise<{ matcher: MiniMatcher; link: WsMatcherLink }> {
  const matcher = new MiniMatcher();
  matchers.push(matcher);
  const base = await matcher.listen();
  if (autoWelcome) {
    matcher.on('frame', (frame, session) => {
      if (frame.type === 'hello') session.send({ type: 'welcome', pilotId: 'pilot-7', heartbeatIntervalMs: 60_000 });
    });
  }
  const link = new WsMatcherLink({
    matcher: MatcherEndpoints.single(base),
    token: 'pilot-token',
    hello: { pilotStamp: 'stamp-1', pilotVersion: '0.1.0', site: 'Test.site', ce: null, queue: null, node },
    logger: silentLogger(),
    backoff: { initialDelayMs: 5, maxDelayMs: 20, jitter: 0 },
    reportCoalesceMs: 0,
    ...extra,
  });
  links.push(link);
  return { matcher, link };
}

const report = (jobId: number, minorStatus: string): JobStatusBody => ({
  jobId,
  attempt: 1,
  at: new Date(0).toISOString(),
  minorStatus,
});

test('says hello with the bearer token, is welcomed, sends offers and reports, delivers matches', async () => {
  const { matcher, link } = await setup();
  const hello = matcher.next('hello');
  const connected = once(link, 'connected');
  link.start();
  const [helloFrame, session] = await hello;
  assert.equal(session.authorization, 'Bearer pilot-token');
  assert.deepEqual(helloFrame, {
    type: 'hello',
    v: 1,
    pilotStamp: 'stamp-1',
    pilotVersion: '0.1.0',
    site: 'Test.site',
    ce: null,
    queue: null,
    node,
    holding: [],
  });
  assert.equal((await connected)[0].pilotId, 'pilot-7');
  assert.equal(link.connected, true);

  const offer = matcher.next('offer');
  assert.equal(link.sendOffer('o1', 0, { cores: 4, memoryMB: 8000, wallTimeSec: null, tags: [] }), true);
  assert.equal((await offer)[0].offerId, 'o1');

  const message = once(link, 'message') as Promise<[LinkInbound]>;
  session.send({ type: 'match', offerId: 'o1', matchSeq: 1, job: matchedJob(3) });
  const [inbound] = await message;
  assert.equal(inbound.type, 'match');

  const status = matcher.next('job.status');
  link.report(report(3, 'Job Initialization'));
  const [statusFrame] = await status;
  assert.equal(statusFrame.ref, 1);
  assert.equal(link.pendingReports, 1);
  const drained = once(link, 'drained');
  session.send({ type: 'ack', ref: statusFrame.ref });
  await drained;
  assert.equal(link.pendingReports, 0);

  const bye = matcher.next('bye');
  await link.close('idle');
  assert.equal((await bye)[0].reason, 'idle');
});

test('after a drop it reconnects, says hello again and replays unacked reports in order', async () => {
  const { matcher, link } = await setup();
  link.setHeldJobs(() => [
    { jobId: 1, attempt: 1 },
    { jobId: 9, attempt: 2 },
  ]);
  const connected = once(link, 'connected');
  link.start();
  await connected;
  const first = matcher.next('job.statuses');
  link.report(report(1, 'a'));
  link.report(report(4, 'b')); // job 4 has ended: only its unacked report says the pilot holds it
  const [firstFrame, firstSession] = await first;
  assert.deepEqual(
    firstFrame.reports.map((r) => r.jobId),
    [1, 4],
    'reports of two attempts due together share a frame',
  );

  const disconnected = once(link, 'disconnected');
  const reconnected = once(link, 'connected');
  const helloAgain = matcher.next('hello');
  firstSession.socket.terminate();
  await disconnected;
  assert.equal(link.connected, false);
  link.report(report(1, 'c')); // queued while disconnected
  const [hello] = await helloAgain;
  assert.equal(hello.pilotStamp, 'stamp-1');
  // It holds what the loop runs and every attempt whose report is unacked, each once.
  assert.deepEqual(hello.type === 'hello' && hello.holding, [
    { jobId: 1, attempt: 1 },
    { jobId: 9, attempt: 2 },
    { jobId: 4, attempt: 1 },
  ]);
  await reconnected;

  // The three reports are replayed on the new connection in one frame, per attempt, each in its order.
  const [replay] = await new Promise<[PilotMessage]>((resolve) => {
    const onFrame = (frame: PilotMessage): void => {
      if (frame.type !== 'job.statuses' && frame.type !== 'job.status') return;
      matcher.off('frame', onFrame);
      resolve([frame]);
    };
    matcher.on('frame', onFrame);
  });
  assert.equal(replay.type, 'job.statuses');
  const replayed =
    replay.type === 'job.statuses'
      ? replay.reports.map((entry) => ({
          jobId: entry.jobId,
          minorStatus: [...(entry.earlier ?? []), entry].map((each) => each.minorStatus),
        }))
      : [];
  assert.deepEqual(replayed, [
    { jobId: 1, minorStatus: ['a', 'c'] },
    { jobId: 4, minorStatus: ['b'] },
  ]);
  assert.equal(link.pendingReports, 3);
  const drained = once(link, 'drained');
  const session = matcher.sessions.at(-1);
  assert.notEqual(session, firstSession);
  if (replay.type === 'job.statuses') session?.send({ type: 'ack', ref: replay.ref });
  await drained;
  assert.equal(link.pendingReports, 0);
  assert.equal(matcher.upgrades, 2);
});

test("a short job's reports wait for each other and leave in one frame with the other jobs' reports; a final report sends at once", async () => {
  const { matcher, link } = await setup(true, { reportCoalesceMs: 60_000 });
  const connected = once(link, 'connected');
  link.start();
  await connected;
  const frame = matcher.next('job.statuses');
  const at = (s: number) => new Date(s * 1000).toISOString();
  link.report({ jobId: 5, attempt: 2, at: at(1), status: 'Running', minorStatus: 'Job Initialization' });
  link.report({ jobId: 6, attempt: 1, at: at(2), minorStatus: 'another job' });
  link.report({ jobId: 5, attempt: 2, at: at(3), minorStatus: 'Application' });
  // Held (the window is a minute): nothing has left after several turns of the event loop.
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(matcher.frames.filter((f) => f.type === 'job.status' || f.type === 'job.statuses').length, 0);
  link.report({ jobId: 5, attempt: 2, at: at(4), status: 'Done', minorStatus: 'Execution Complete', exitCode: 0 });
  const [batch, session] = await frame;
  // One frame: job 5's reports (its Done with `earlier`), then job 6's, each attempt in its own entry.
  const [first, second] = batch.reports;
  assert.equal(batch.reports.length, 2);
  assert.deepEqual([first?.jobId, first?.attempt, first?.status, first?.exitCode, first?.at], [5, 2, 'Done', 0, at(4)]);
  assert.deepEqual(first?.earlier, [
    { at: at(1), status: 'Running', minorStatus: 'Job Initialization' },
    { at: at(3), minorStatus: 'Application' },
  ]);
  assert.deepEqual([second?.jobId, second?.minorStatus, second?.earlier], [6, 'another job', undefined]);
  assert.equal(matcher.frames.filter((f) => f.type === 'job.status').length, 0);
  const drained = once(link, 'drained');
  session.send({ type: 'ack', ref: batch.ref });
  await drained;
  assert.equal(link.pendingReports, 0);
});

test('a frame of several attempts: those the ack names as refused are dropped with the rest; a retryable error replays the whole frame', async () => {
  const { matcher, link } = await setup(true, { reportCoalesceMs: 60_000 });
  const connected = once(link, 'connected');
  link.start();
  await connected;
  const done = (jobId: number): JobStatusBody => ({ jobId, attempt: 1, at: new Date(0).toISOString(), status: 'Done' });
  const first = matcher.next('job.statuses');
  link.report(done(1));
  link.report(done(2));
  const [batch, session] = await first;
  assert.deepEqual(
    batch.reports.map((r) => r.jobId),
    [1, 2],
  );
  assert.equal(link.pendingReports, 2);
  const drained = once(link, 'drained');
  session.send({
    type: 'ack',
    ref: batch.ref,
    refused: [{ jobId: 2, attempt: 1, code: 'ATTEMPT_MISMATCH', message: 'job 2 is at attempt 2' }],
  });
  await drained;
  assert.equal(link.pendingReports, 0);

  const second = matcher.next('job.statuses');
  link.report(done(3));
  link.report(done(4));
  const [retried] = await second;
  const replay = matcher.next('job.statuses');
  session.send({ type: 'error', code: 'STORE_UNAVAILABLE', message: 'busy', ref: retried.ref });
  const [replayed] = await replay;
  assert.deepEqual(
    replayed.reports.map((r) => r.jobId),
    [3, 4],
  );
  assert.equal(matcher.upgrades, 2, 'replayed on a new connection');
  assert.equal(link.pendingReports, 2);
});

test('a heartbeat carries its match count only with a list of everything held; a kept one never does', async () => {
  const { matcher, link } = await setup();
  let held = [{ jobId: 1, attempt: 1 }];
  link.setHeldJobs(() => held);
  const connected = once(link, 'connected');
  link.start();
  await connected;
  const sample = (jobId: number) => ({ jobId, attempt: 1, cpuSec: 1, rssMB: 1, wallSec: 1 });

  let beat = matcher.next('heartbeat');
  link.heartbeat([sample(1)], undefined, 3);
  assert.equal((await beat)[0].matchSeq, 3, 'every held job listed: the count goes');

  // Job 1 ended; its Done is not acked yet, so the matcher may not have it: no count.
  held = [];
  const done = matcher.next('job.status');
  link.report({ ...report(1, 'Execution Complete'), status: 'Done' });
  const [doneFrame, session] = await done;
  beat = matcher.next('heartbeat');
  link.heartbeat([], undefined, 3);
  assert.equal((await beat)[0].matchSeq, undefined, 'a job with an unacked report is not listed');
  const drained = once(link, 'drained');
  session.send({ type: 'ack', ref: doneFrame.ref });
  await drained;
  beat = matcher.next('heartbeat');
  link.heartbeat([], undefined, 3);
  assert.equal((await beat)[0].matchSeq, 3, 'acked: nothing held, nothing unlisted');

  // A job whose sample failed is left out of the list: no count.
  held = [{ jobId: 2, attempt: 1 }];
  beat = matcher.next('heartbeat');
  link.heartbeat([], undefined, 4);
  assert.equal((await beat)[0].matchSeq, undefined);

  // Taken while disconnected, sent on the next connection: it never vouches for that connection's matches.
  held = [];
  const disconnected = once(link, 'disconnected');
  session.socket.terminate();
  await disconnected;
  link.heartbeat([], undefined, 4);
  beat = matcher.next('heartbeat');
  const [kept] = await beat;
  assert.equal(typeof kept.at, 'string', 'the kept heartbeat, with the time it was taken');
  assert.equal(kept.matchSeq, undefined);
});

test('a 401 on upgrade is fatal: no reconnect', async () => {
  const { matcher, link } = await setup();
  matcher.refuseWith = 401;
  const fatal = once(link, 'fatal') as Promise<[PilothouseError]>;
  link.start();
  const [error] = await fatal;
  assert.equal(error.code, 'TOKEN_INVALID');
  assert.match(error.message, /401/);
  assert.equal(link.connected, false);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(matcher.upgrades, 1);
});

test('a 503 on upgrade is retried', async () => {
  const { matcher, link } = await setup();
  matcher.refuseWith = 503;
  const retry = once(link, 'reconnecting');
  link.start();
  await retry;
  matcher.refuseWith = null;
  await once(link, 'connected');
  assert.ok(matcher.upgrades >= 2);
});

test('a refused report is dropped when the code is final, replayed on a new connection when retryable', async () => {
  const { matcher, link } = await setup();
  const connected = once(link, 'connected');
  link.start();
  await connected;
  const first = matcher.next('job.status');
  link.report(report(1, 'final'));
  const [, session] = await first;
  const drained = once(link, 'drained');
  session.send({ type: 'error', code: 'ATTEMPT_MISMATCH', message: 'old attempt', ref: 1 });
  await drained;
  assert.equal(link.pendingReports, 0);

  const sent = matcher.next('job.status');
  link.report(report(2, 'retry me'));
  const [frame] = await sent;
  const replay = matcher.next('job.status');
  session.send({ type: 'error', code: 'STORE_UNAVAILABLE', message: 'busy', ref: frame.ref });
  const [replayed] = await replay;
  assert.equal(replayed.minorStatus, 'retry me');
  assert.equal(matcher.upgrades, 2, 'replayed on a new connection');
});

test('a report refused with a retryable code is replayed for its whole time budget, however many times, then dropped', async () => {
  let nowMs = 1_000_000;
  const { matcher, link } = await setup(true, { reportRetryBudgetMs: 60_000, now: () => nowMs });
  matcher.on('frame', (frame, session) => {
    if (frame.type !== 'job.status') return;
    nowMs += 5_000; // twelve refusals fit in the budget, the thirteenth does not
    session.send({ type: 'error', code: 'STORE_UNAVAILABLE', message: 'database restarting', ref: frame.ref });
  });
  const connected = once(link, 'connected');
  link.start();
  await connected;
  const drained = once(link, 'drained');
  link.report(report(3, 'Done at last'));
  await drained;
  assert.equal(link.pendingReports, 0);
  assert.equal(matcher.upgrades, 13, 'replayed on a new connection after each of the twelve refusals in budget');
});

test('a frame with another protocol version is fatal', async () => {
  const { matcher, link } = await setup(false);
  matcher.on('frame', (frame, session) => {
    if (frame.type === 'hello')
      session.socket.send(JSON.stringify({ type: 'welcome', v: 99, pilotId: 'x', heartbeatIntervalMs: 1000 }));
  });
  const fatal = once(link, 'fatal') as Promise<[PilothouseError]>;
  link.start();
  assert.equal((await fatal)[0].code, 'PROTOCOL_VERSION');
});

test('a match this pilot cannot read is surfaced with its job, other bad frames are ignored', async () => {
  const { matcher, link } = await setup();
  const connected = once(link, 'connected');
  link.start();
  await connected;
  const session = matcher.sessions.at(-1);
  const message = once(link, 'message') as Promise<[LinkInbound]>;
  session?.socket.send('{"type":"parked"}'); // invalid, not a match: ignored
  const job = { ...matchedJob(4, { attempt: 2 }), description: { ...matchedJob(4).description, executable: 42 } };
  session?.socket.send(JSON.stringify({ type: 'match', v: 1, offerId: 'o9', matchSeq: 3, job }));
  const [inbound] = await message;
  assert.equal(inbound.type, 'match.unreadable');
  assert.deepEqual(
    inbound.type === 'match.unreadable' && [inbound.offerId, inbound.matchSeq, inbound.jobId, inbound.attempt],
    ['o9', 3, 4, 2],
  );
  assert.match(inbound.type === 'match.unreadable' ? inbound.reason : '', /executable/);
});

test('a match from a newer matcher is read leniently: unknown fields at any depth are dropped', async () => {
  const { matcher, link } = await setup();
  const connected = once(link, 'connected');
  link.start();
  await connected;
  const message = once(link, 'message') as Promise<[LinkInbound]>;
  const base = matchedJob(6, { description: { executable: 'true', requirements: { cores: { min: 2, max: 4 } } } });
  const description = {
    ...base.description,
    shinyNewField: true,
    requirements: { ...base.description.requirements, futureRule: 'x', cores: { min: 2, max: 4, preferred: 3 } },
  };
  matcher.sessions.at(-1)?.socket.send(
    JSON.stringify({
      type: 'match',
      v: 1,
      offerId: 'o1',
      matchSeq: 1,
      futureTop: 1,
      job: { ...base, description, futureGrant: {} },
    }),
  );
  const [inbound] = await message;
  assert.equal(inbound.type, 'match');
  if (inbound.type !== 'match') return;
  assert.equal('shinyNewField' in inbound.job.description, false);
  assert.equal('futureRule' in inbound.job.description.requirements, false);
  assert.deepEqual(inbound.job.description.requirements.cores, { min: 2, max: 4 });
  assert.equal('futureGrant' in inbound.job, false);
});

/** Resolves when the server's ping on this session comes back: every frame sent before it has arrived. */
async function roundTrip(session: { socket: import('ws').WebSocket }): Promise<void> {
  const pong = once(session.socket, 'pong');
  session.socket.ping();
  await pong;
}

test('preconnect opens the connection and says nothing; start() says hello on it, asking for the hello then', async () => {
  let helloAsked = 0;
  const hello = { pilotStamp: 'stamp-1', pilotVersion: '0.1.0', site: 'Test.site', ce: null, queue: null, node };
  const { matcher, link } = await setup(true, {
    hello: () => {
      helloAsked += 1;
      return hello;
    },
  });
  const opened = once(matcher, 'connection');
  link.preconnect();
  const [session] = (await opened) as [Parameters<typeof roundTrip>[0]];
  await roundTrip(session);
  assert.equal(matcher.frames.length, 0, 'not a frame before start()');
  assert.equal(helloAsked, 0);
  assert.equal(link.connected, false);

  const greeted = matcher.next('hello');
  const connected = once(link, 'connected');
  link.start();
  const [helloFrame, helloSession] = await greeted;
  await connected;
  assert.equal(helloSession, session, 'hello goes on the connection opened early');
  assert.equal(matcher.upgrades, 1);
  assert.equal(helloAsked, 1);
  assert.equal(helloFrame.pilotStamp, 'stamp-1');
});

/** A logger whose lines are kept; `seen(text)` resolves when a line containing it is written. */
function keptLogger(level: string): {
  logger: ReturnType<typeof createLogger>;
  lines: string[];
  seen: (text: string) => Promise<void>;
} {
  const lines: string[] = [];
  const waiters: { text: string; resolve: () => void }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const line = chunk.toString();
      lines.push(line);
      for (const waiter of waiters.filter((w) => line.includes(w.text))) waiter.resolve();
      done();
    },
  });
  const seen = (text: string): Promise<void> =>
    lines.some((line) => line.includes(text))
      ? Promise.resolve()
      : new Promise((resolve) => waiters.push({ text, resolve }));
  return { logger: createLogger({ component: 'test', level, destination: sink }), lines, seen };
}

test('a connection lost before start() is opened again by start(), and only then', async () => {
  const log = keptLogger('debug');
  const { matcher, link } = await setup(true, { logger: log.logger });
  const reconnects: unknown[] = [];
  link.on('reconnecting', (info) => reconnects.push(info));
  const opened = once(matcher, 'connection');
  link.preconnect();
  const [session] = (await opened) as [Parameters<typeof roundTrip>[0]];
  session.socket.terminate();
  await log.seen('closed before welcome'); // the link has seen it go
  assert.deepEqual(reconnects, [], 'no reconnect is scheduled before start()');
  const connected = once(link, 'connected');
  link.start();
  await connected;
  assert.equal(matcher.upgrades, 2, 'one early connection, one opened by start()');
  assert.equal(matcher.ofType('hello').length, 1);
});

test('a token refused while connecting early is told when the loop starts, not before', async () => {
  const log = keptLogger('error');
  const { matcher, link } = await setup(true, { logger: log.logger });
  matcher.refuseWith = 401;
  let started = false;
  const toldWhenStarted: boolean[] = [];
  link.on('fatal', () => toldWhenStarted.push(started));
  link.preconnect();
  await log.seen('matcher link failed'); // the link has given up
  assert.deepEqual(toldWhenStarted, [], 'nobody is told before start()');
  const fatal = once(link, 'fatal') as Promise<[PilothouseError]>;
  started = true;
  link.start();
  const [error] = await fatal;
  assert.equal(error.code, 'TOKEN_INVALID');
  assert.deepEqual(toldWhenStarted, [true]);
  assert.equal(matcher.upgrades, 1, 'a refused token is not tried again');
  assert.equal(matcher.ofType('hello').length, 0);
  assert.match(log.lines.join(''), /401/);
});
