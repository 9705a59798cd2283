/**
 * The pilot's sandbox transfers against a real HTTP server on port 0 that answers as the matcher does
 * when its database is away: an error answer's own code is what the pilot logs and decides on
 * (STORE_UNAVAILABLE is retried and says what happened); a transient status is retried even when its
 * code is not retryable; a refusal that is final (SANDBOX_TOO_LARGE) is not retried.
 */
import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { HttpSandboxTransfer } from '../../pilot/sandbox-transfer.ts';
import { MatcherEndpoints } from '../../shared/endpoints.ts';
import { PilothouseError } from '../../shared/errors.ts';
import { createLogger } from '../../shared/logger.ts';

describe('HttpSandboxTransfer error answers', () => {
  let server: http.Server;
  let base: string;
  let dir: string;
  let file: string;
  let ref: string;
  /** What the next PUTs answer: [status, error code or null for a bare status]; then 201. */
  let answers: [number, string | null][] = [];
  let puts = 0;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ph-transfer-'));
    file = path.join(dir, 'out.tar.gz');
    const bytes = Buffer.from('output bytes');
    await writeFile(file, bytes);
    ref = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        puts += 1;
        const [status, code] = answers.shift() ?? [201, null];
        if (code === null) res.writeHead(status).end();
        else
          res
            .writeHead(status, { 'content-type': 'application/json' })
            .end(JSON.stringify({ error: { code, message: `answered ${code}` } }));
      });
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  function transfer(lines: string[]): HttpSandboxTransfer {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    return new HttpSandboxTransfer({
      matcher: MatcherEndpoints.single(base),
      maxDownloadBytes: 1024,
      attempts: 5,
      backoff: { initialDelayMs: 1, maxDelayMs: 2, jitter: 0 },
      logger: createLogger({ component: 'test', level: 'warn', destination: sink }),
    });
  }

  it("logs and retries the matcher's own code: STORE_UNAVAILABLE, then INTERNAL; a transient status whatever its code", async () => {
    const lines: string[] = [];
    answers = [
      [503, 'STORE_UNAVAILABLE'],
      [500, 'INTERNAL'],
      [500, 'VALIDATION_FAILED'],
      [502, null],
    ];
    puts = 0;
    await transfer(lines).upload(file, ref, 'job-token');
    assert.equal(puts, 5, 'four failures, then stored');
    const codes = lines.map((line) => (JSON.parse(line) as { code: string }).code);
    // A 500 whose code is final (it should not be) is still a transient failure here.
    assert.deepEqual(codes, ['STORE_UNAVAILABLE', 'INTERNAL', 'MATCHER_UNREACHABLE', 'MATCHER_UNREACHABLE']);
    assert.match(lines[0] as string, /answered STORE_UNAVAILABLE \(HTTP 503\)/);
  });

  it('does not retry a final refusal, and says which it was', async () => {
    answers = [[413, 'SANDBOX_QUOTA_EXCEEDED']];
    puts = 0;
    await assert.rejects(transfer([]).upload(file, ref, 'job-token'), (error: unknown) => {
      assert.ok(error instanceof PilothouseError);
      assert.equal(error.code, 'SANDBOX_QUOTA_EXCEEDED');
      return true;
    });
    assert.equal(puts, 1);
  });
});
