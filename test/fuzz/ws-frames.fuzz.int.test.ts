/**
 * WebSocket frame fuzzing over a real matcher (port 0, a SQLite file, real sockets): thousands of frames
 * on connections that said hello and on connections that did not — mutations of every pilot message
 * (hello, offer, offer.cancel, job.status, job.statuses, heartbeat, log, bye) naming real jobs and attempts, garbage
 * text and binary frames. Every frame the matcher sends back must be a valid protocol message, every
 * error must carry a registered code other than INTERNAL, every close must be a polite one with a code.
 * Afterwards a fresh pilot is still served, and the store invariants hold.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fc from 'fast-check';
import WebSocket from 'ws';
import { isErrorCode } from '../../shared/errors.ts';
import { DEFAULT_LIMITS } from '../../matcher/limits.ts';
import { parseMatcherMessage, type MatcherMessage } from '../../shared/protocol/messages.ts';
import { checkInvariants, readSnapshot } from '../../matcher/store/invariants.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { NODE, RawPilot, resources } from '../helpers/raw-pilot.ts';
import { fuzzRuns, hostileString, mutated } from './hostile.ts';

let m: TestMatcher;
let pilotToken: string;
let user: string;
const STAMPS = ['fz-1', 'fz-2', 'fz-3'];
const PROBE_REF = 987_654_321;

before(async () => {
  // Fuzz frames come fast: the rate limit has its own test, here every frame must be handled.
  m = await startTestMatcher({ config: { limits: { ...DEFAULT_LIMITS, framesPerSec: 1e6, frameBurst: 1e6 } } });
  pilotToken = await m.pilotToken('local');
  user = await m.userToken('alice', 'local');
  const jobs = Array.from({ length: 40 }, (_, i) => ({
    executable: '/bin/true',
    requirements: { cores: { min: 1 + (i % 2) }, ...(i % 5 === 0 && { tags: ['gpu'] }) },
  }));
  assert.equal((await m.api('POST', '/api/jobs', { token: user, json: jobs })).status, 201);
});
after(() => m.close());

const now = () => new Date().toISOString();
const jobId = fc.integer({ min: 1, max: 42 });
const attempt = fc.integer({ min: 1, max: 3 });

/** Valid pilot messages over real job ids, for the mutations to start from. */
const validFrame: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...STAMPS).map((pilotStamp) => ({
    type: 'hello',
    v: 1,
    pilotStamp,
    pilotVersion: 'fuzz',
    site: 'Site.A',
    ce: 'ce1',
    queue: 'q1',
    node: NODE,
    holding: [{ jobId: 1, attempt: 1 }],
  })),
  fc
    .record({
      offerId: fc.constantFrom('o1', 'o2'),
      matchSeq: fc.nat(5),
      maxJobs: fc.option(fc.integer({ min: 1, max: 4 })),
    })
    .map(({ maxJobs, ...o }) => ({
      type: 'offer',
      v: 1,
      ...o,
      resources: { cores: 2, memoryMB: 4096, wallTimeSec: null, tags: ['gpu'] },
      ...(maxJobs !== null && { maxJobs }),
    })),
  fc.constant({ type: 'offer.cancel', v: 1, offerId: 'o1' }),
  fc
    .record({
      jobId,
      attempt,
      status: fc.constantFrom('Running', 'Completing', 'Done', 'Failed', 'Stalled', 'Waiting', 'Killed'),
    })
    .map((r) => ({ type: 'job.status', v: 1, ref: 7, ...r, minorStatus: 'Application', exitCode: 0, at: now() })),
  fc
    .array(fc.record({ jobId, attempt, status: fc.constantFrom('Running', 'Done', 'Failed', 'Killed') }), {
      minLength: 1,
      maxLength: 3,
    })
    .map((reports) => ({
      type: 'job.statuses',
      v: 1,
      ref: 10,
      reports: reports.map((r) => ({ ...r, exitCode: 0, at: now() })),
    })),
  fc.record({ jobId, attempt }).map((j) => ({
    type: 'heartbeat',
    v: 1,
    ref: 8,
    jobs: [{ ...j, cpuSec: 1, rssMB: 10, wallSec: 2 }],
  })),
  fc.constant({ type: 'log', v: 1, ref: 9, lines: [{ seq: 1, line: '{"msg":"fuzz"}' }] }),
  fc.constant({ type: 'bye', v: 1, reason: 'fuzz', jobsRun: 1, jobsFailed: 0 }),
);

const frame: fc.Arbitrary<string | Buffer> = fc.oneof(
  // Valid frames too, so that sessions get far enough (matches, reports) for the mutations to bite.
  { weight: 4, arbitrary: validFrame.map((v) => JSON.stringify(v)) },
  { weight: 6, arbitrary: validFrame.chain(mutated).map((v) => JSON.stringify(v) ?? 'null') },
  { weight: 1, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)) },
);

interface Outcome {
  received: MatcherMessage[];
  /** Frames from the matcher that are not valid protocol messages (there must be none). */
  invalid: string[];
  close: { code: number; reason: string } | null;
}

let phase = '';
async function runSessionBounded(sayHello: string | null, frames: (string | Buffer)[]): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`session stuck at ${phase}; hello ${sayHello}; frames: ${JSON.stringify(frames.map(String))}`),
        ),
      15_000,
    );
  });
  try {
    return await Promise.race([runSession(sayHello, frames), stuck]);
  } finally {
    clearTimeout(timer);
  }
}

async function runSession(sayHello: string | null, frames: (string | Buffer)[]): Promise<Outcome> {
  phase = 'open';
  const ws = new WebSocket(`${m.url.replace(/^http/, 'ws')}/api/pilots/connect`, {
    headers: { authorization: `Bearer ${pilotToken}` },
  });
  const received: MatcherMessage[] = [];
  const invalid: string[] = [];
  let close: Outcome['close'] = null;
  let probeAnswered: () => void = () => undefined;
  const probe = new Promise<void>((resolve) => (probeAnswered = resolve));
  ws.on('message', (data) => {
    let message: MatcherMessage;
    try {
      message = parseMatcherMessage(String(data));
    } catch (error) {
      invalid.push(`${String(data).slice(0, 500)}: ${(error as Error).message}`);
      return;
    }
    received.push(message);
    if ((message.type === 'ack' || message.type === 'error') && message.ref === PROBE_REF) probeAnswered();
  });
  const closed = once(ws, 'close').then(([code, reason]) => {
    close = { code: code as number, reason: String(reason) };
  });
  await once(ws, 'open');
  if (sayHello !== null) {
    ws.send(
      JSON.stringify({
        type: 'hello',
        v: 1,
        pilotStamp: sayHello,
        pilotVersion: 'fuzz',
        site: 'Site.A',
        ce: 'ce1',
        queue: 'q1',
        node: NODE,
      }),
    );
  }
  phase = 'probe';
  for (const f of frames) if (ws.readyState === WebSocket.OPEN) ws.send(f);
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'heartbeat', v: 1, ref: PROBE_REF, jobs: [] }));
  // Frames are handled in order: the probe's answer means every frame before it was handled.
  await Promise.race([probe, closed]);
  phase = 'close';
  if (ws.readyState === WebSocket.OPEN) {
    ws.close();
    await closed;
  }
  return { received, invalid, close };
}

it('hostile frames before and after hello get coded errors or a polite close, never a crash', async (t) => {
  let frames = 0;
  const codes = new Map<string, number>();
  const types = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(
      fc.option(fc.constantFrom(...STAMPS), { freq: 3 }),
      fc.array(frame, { minLength: 1, maxLength: 12 }),
      async (hello, sent) => {
        const { received, invalid, close } = await runSessionBounded(hello, sent);
        assert.deepEqual(invalid, [], 'the matcher sent frames that are not protocol messages');
        frames += sent.length;
        for (const message of received) {
          types.set(message.type, (types.get(message.type) ?? 0) + 1);
          if (message.type !== 'error') continue;
          codes.set(message.code, (codes.get(message.code) ?? 0) + 1);
          assert.ok(isErrorCode(message.code), `unregistered code ${message.code}`);
          assert.notEqual(message.code, 'INTERNAL', message.message);
        }
        if (close !== null) {
          const { code, reason } = close as { code: number; reason: string };
          assert.ok(
            code === 1000 ||
              code === 1005 ||
              ((code === 1008 || code === 1009) && (code === 1009 || isErrorCode(reason))),
            `close ${code} ${reason}`,
          );
        }
      },
    ),
    { numRuns: fuzzRuns(1_000), interruptAfterTimeLimit: 120_000 },
  );
  t.diagnostic(
    `${frames} frames; answers ${[...types].map(([k, n]) => `${k}:${n}`).join(' ')}; errors ${[...codes].map(([k, n]) => `${k}:${n}`).join(' ')}`,
  );
  assert.ok(frames >= 1_000 || process.env.FUZZ_RUNS !== undefined, `${frames} frames`);
  assert.ok((types.get('match') ?? 0) >= 5 && (types.get('ack') ?? 0) > 0, 'the fuzzing reached matching and reports');

  // Still serving: a job submitted now (or an older one still waiting) goes to a well-behaved pilot.
  const fresh = await m.api('POST', '/api/jobs', { token: user, json: { executable: '/bin/true' } });
  assert.equal(fresh.status, 201);
  const pilot = await RawPilot.connect(m.url, pilotToken, { stamp: 'after-fuzz' });
  pilot.send({ type: 'offer', offerId: 'last', matchSeq: 0, resources: { ...resources(2), tags: ['gpu'] } });
  assert.equal((await pilot.next('match')).job.attempt >= 1, true);
  await pilot.close();
  assert.deepEqual(checkInvariants(await readSnapshot(m.matcher.store)), []);
});
