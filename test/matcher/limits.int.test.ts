/**
 * Limits on input, over a real matcher on port 0: a client over a limit gets its error with a stable
 * code, and another client is served at the same time. Frames go over real WebSockets, bodies over
 * real HTTP; a real pilot link writes large multi-byte log lines under the smallest frame limit.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { silentLogger } from '../../shared/logger.ts';
import { MatcherEndpoints } from '../../shared/endpoints.ts';
import { DEFAULT_LIMITS } from '../../matcher/limits.ts';
import { WsMatcherLink } from '../../pilot/matcher-link.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { NODE, RawPilot, resources } from '../helpers/raw-pilot.ts';
import { waitFor } from '../helpers/wait.ts';

const limits = {
  ...DEFAULT_LIMITS,
  maxSubmitBytes: 2048,
  maxJobsPerSubmission: 5,
  maxFrameBytes: 512 * 1024,
  framesPerSec: 50,
  frameBurst: 100,
  maxSandboxBytes: 4096,
  maxSandboxBytesPerVo: 10 * 1024,
  maxConnectionsPerToken: 2,
};

let m: TestMatcher;
let user: string;
before(async () => {
  m = await startTestMatcher({ config: { limits } });
  user = await m.userToken('alice', 'local');
});
after(() => m.close());

/** A pilot of its own token that takes one job: proof that the matcher still serves others. */
async function anotherPilotIsServed(stamp: string): Promise<void> {
  const pilot = await RawPilot.connect(m.url, await m.pilotToken('local'), { stamp });
  try {
    const submitted = await m.api('POST', '/api/jobs', { token: user, json: { executable: '/bin/true' } });
    assert.equal(submitted.status, 201);
    pilot.send({ type: 'offer', offerId: `${stamp}-o`, matchSeq: 0, resources: resources() });
    const match = await pilot.next('match');
    assert.equal(match.job.jobId, submitted.body.jobIds[0]);
  } finally {
    await pilot.close();
  }
}

function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }));
}

describe('WebSocket frames', () => {
  it('a connection flooding frames after hello is told RATE_LIMITED and closed; another pilot is served', async () => {
    const flooder = await RawPilot.connect(m.url, await m.pilotToken('local'), { stamp: 'flooder' });
    const closed = closeOf(flooder.ws);
    const refused = flooder.next('error');
    for (let i = 0; i < 2_000 && flooder.ws.readyState === WebSocket.OPEN; i += 1) {
      flooder.send({ type: 'heartbeat', ref: i, jobs: [] });
    }
    const error = await refused;
    assert.equal(error.code, 'RATE_LIMITED');
    assert.deepEqual(await closed, { code: 1008, reason: 'RATE_LIMITED' });
    await anotherPilotIsServed('patient-1');
  });

  it('a flood before hello is cut off the same way', async () => {
    const ws = new WebSocket(`${m.url.replace(/^http/, 'ws')}/api/pilots/connect`, {
      headers: { authorization: `Bearer ${await m.pilotToken('local')}` },
    });
    await once(ws, 'open');
    const codes: string[] = [];
    ws.on('message', (data) => codes.push((JSON.parse(String(data)) as { code: string }).code));
    const closed = closeOf(ws);
    // Well-formed frames, each refused for want of hello (garbage would end the connection sooner, as
    // a protocol violation, once ten have been handled).
    const beforeHello = JSON.stringify({ type: 'heartbeat', v: 1, ref: 1, jobs: [] });
    for (let i = 0; i < 1_000 && ws.readyState === WebSocket.OPEN; i += 1) ws.send(beforeHello);
    assert.deepEqual(await closed, { code: 1008, reason: 'RATE_LIMITED' });
    assert.ok(codes.includes('RATE_LIMITED'), `codes seen: ${[...new Set(codes)].join(', ')}`);
    await anotherPilotIsServed('patient-2');
  });

  it('a frame over --max-frame-bytes closes the connection with 1009; a pilot link logging large multi-byte lines stays within it', async () => {
    const big = await RawPilot.connect(m.url, await m.pilotToken('local'), { stamp: 'big-frames' });
    const closed = closeOf(big.ws);
    big.sendRaw(JSON.stringify({ type: 'log', v: 1, ref: 1, lines: [{ seq: 1, line: 'x'.repeat(600 * 1024) }] }));
    assert.equal((await closed).code, 1009);
    await anotherPilotIsServed('patient-3');

    // The pilot's own batches are measured in encoded bytes: 60 lines of 15,000 three-byte characters
    // (2.6 MB) travel in several frames under the 512 KiB limit, none refused.
    const link = new WsMatcherLink({
      matcher: MatcherEndpoints.single(m.url),
      token: await m.pilotToken('local'),
      hello: { pilotStamp: 'euro-logger', pilotVersion: 'test', site: 'Site.A', ce: null, queue: null, node: NODE },
      logger: silentLogger(),
      backoff: { initialDelayMs: 50, maxDelayMs: 200, jitter: 0 },
      logFlushMs: 10,
    });
    const disconnects: unknown[] = [];
    link.on('disconnected', (info) => disconnects.push(info));
    link.start();
    await once(link, 'connected');
    for (let i = 0; i < 60; i += 1) link.log(`${i} ${'€'.repeat(15_000)}`);
    await waitFor(async () => link.pendingLogLines === 0, 'every log line acked', 20_000);
    assert.deepEqual(disconnects, [], 'never cut off');
    await link.close('test over');
    const { body } = await m.api('GET', '/api/pilots/euro-logger/logs?limit=100');
    assert.equal(body.totalLines, 60);
    assert.ok((body.lines as { line: string }[]).every((l) => l.line.endsWith('€'.repeat(15_000))));
  });
});

describe('connections per token', () => {
  function connect(token: string): Promise<WebSocket | { status: number; code: string }> {
    const ws = new WebSocket(`${m.url.replace(/^http/, 'ws')}/api/pilots/connect`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(ws));
      ws.once('unexpected-response', (_req, res: IncomingMessage) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += String(chunk)));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, code: (JSON.parse(text) as { error: { code: string } }).error.code }),
        );
      });
      ws.once('error', reject);
    });
  }

  it('the connection beyond the limit gets 429 TOO_MANY_CONNECTIONS; other tokens connect; a closed one frees its place', async () => {
    const token = await m.pilotToken('local');
    const first = await connect(token);
    const second = await connect(token);
    assert.ok(first instanceof WebSocket && second instanceof WebSocket);
    assert.deepEqual(await connect(token), { status: 429, code: 'TOO_MANY_CONNECTIONS' });
    const other = await connect(await m.pilotToken('local'));
    assert.ok(other instanceof WebSocket, 'another token is not affected');
    other.close();

    first.close();
    await once(first, 'close');
    // The matcher releases the place when its side of the socket closes, a moment after ours.
    const third = await waitFor(async () => {
      const attempt = await connect(token);
      return attempt instanceof WebSocket ? attempt : undefined;
    }, 'a place freed by the closed connection');
    third.close();
    second.close();
  });
});

describe('REST bodies', () => {
  it('a submission over --max-jobs-per-submission is 413 SUBMISSION_TOO_LARGE and stores nothing', async () => {
    const owner = await m.userToken('bulk-user', 'local');
    const tooMany = Array.from({ length: 6 }, () => ({ executable: '/bin/true' }));
    const refused = await m.api('POST', '/api/jobs', { token: owner, json: tooMany });
    assert.equal(refused.status, 413);
    assert.equal(refused.body.error.code, 'SUBMISSION_TOO_LARGE');
    assert.match(refused.body.error.message, /at most 5 jobs/);
    const mine = async () => (await m.api('POST', '/api/jobs/search', { token: owner, json: {} })).body.total;
    assert.equal(await mine(), 0);
    const accepted = await m.api('POST', '/api/jobs', { token: owner, json: tooMany.slice(1) });
    assert.equal(accepted.status, 201);
    assert.equal(accepted.body.jobIds.length, 5);
    assert.equal(await mine(), 5);
  });

  it('a body over --max-submit-bytes is 413 PAYLOAD_TOO_LARGE', async () => {
    const refused = await m.api('POST', '/api/jobs', {
      token: user,
      json: { executable: '/bin/true', arguments: ['x'.repeat(3000)] },
    });
    assert.equal(refused.status, 413);
    assert.equal(refused.body.error.code, 'PAYLOAD_TOO_LARGE');
  });
});

describe('sandboxes', () => {
  const sandboxOf = (size: number) => {
    const bytes = randomBytes(size);
    return { bytes, ref: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
  };
  const upload = (token: string, sandbox: { bytes: Buffer; ref: string }, chunked = false) =>
    chunked
      ? fetch(`${m.url}/api/sandboxes/${sandbox.ref}`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/gzip' },
          // No Content-Length: the size is only known as the bytes arrive.
          body: new ReadableStream({
            start(controller) {
              controller.enqueue(sandbox.bytes);
              controller.close();
            },
          }),
          duplex: 'half',
        } as RequestInit).then(async (r) => ({ status: r.status, body: (await r.json()) as any }))
      : m.api('PUT', `/api/sandboxes/${sandbox.ref}`, { token, body: sandbox.bytes, contentType: 'application/gzip' });

  it('an upload over --max-sandbox-bytes is SANDBOX_TOO_LARGE; past the VO quota SANDBOX_QUOTA_EXCEEDED, and nothing is kept', async () => {
    const alice = await m.userToken('alice', 'vo-quota');
    const tooBig = await upload(alice, sandboxOf(5000));
    assert.deepEqual([tooBig.status, tooBig.body.error.code], [413, 'SANDBOX_TOO_LARGE']);

    const kept = [sandboxOf(3000), sandboxOf(3000), sandboxOf(3000)];
    for (const sandbox of kept) assert.equal((await upload(alice, sandbox)).status, 201);
    // 9,000 of 10,240 bytes used: 3,000 more do not fit, announced or streamed.
    for (const chunked of [false, true]) {
      const over = sandboxOf(3000);
      const refused = await upload(alice, over, chunked);
      assert.deepEqual(
        [refused.status, refused.body.error.code],
        [413, 'SANDBOX_QUOTA_EXCEEDED'],
        `chunked ${chunked}`,
      );
      assert.equal(refused.body.error.quotaBytes, 10 * 1024);
      const lookup = await m.api('GET', `/api/sandboxes/${over.ref}`, { token: alice });
      assert.equal(lookup.body.error.code, 'SANDBOX_NOT_FOUND');
    }
    // What fits still fits, a sandbox already stored costs nothing, and another VO has its own quota.
    assert.equal((await upload(alice, sandboxOf(1000))).status, 201);
    assert.equal((await upload(alice, kept[0] as { bytes: Buffer; ref: string })).status, 200);
    const carol = await m.userToken('carol', 'vo-other');
    assert.equal((await upload(carol, sandboxOf(3000))).status, 201);
  });
});
