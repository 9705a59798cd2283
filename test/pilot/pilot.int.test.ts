/**
 * The pilot's real parts together (loop, WebSocket link, job runner, HTTP sandbox transfer) against a
 * minimal matcher: welcome, one match, parked offers, acks, an output sandbox upload, an idle exit.
 * Also the shipped bundle, dist/pilot.mjs, run as a process: one job end to end, and a refused token.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { MatcherEndpoints } from '../../shared/endpoints.ts';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../../shared/clock.ts';
import { silentLogger } from '../../shared/logger.ts';
import type { PilotMessage } from '../../shared/protocol/messages.ts';
import { JobRunner } from '../../pilot/job-runner.ts';
import { PilotLoop } from '../../pilot/loop.ts';
import { WsMatcherLink } from '../../pilot/matcher-link.ts';
import { HttpSandboxTransfer } from '../../pilot/sandbox-transfer.ts';
import { Slot } from '../../pilot/slot.ts';
import { MiniMatcher } from './mini-matcher.ts';
import { matchedJob } from './fakes.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bundle = path.join(root, 'dist/pilot.mjs');
const matchers: MiniMatcher[] = [];
after(async () => {
  await Promise.all(matchers.map((matcher) => matcher.close()));
});

/** Welcomes, answers the first offer with `job`, parks later offers, acks reports, confirms cancels. */
async function scriptedMatcher(job: ReturnType<typeof matchedJob>): Promise<{ matcher: MiniMatcher; base: string }> {
  const matcher = new MiniMatcher();
  matchers.push(matcher);
  const base = await matcher.listen();
  let matched = false;
  matcher.on('frame', (frame, session) => {
    switch (frame.type) {
      case 'hello':
        session.send({ type: 'welcome', pilotId: 'pilot-1', heartbeatIntervalMs: 50 });
        return;
      case 'offer':
        if (!matched) {
          matched = true;
          session.send({ type: 'match', offerId: frame.offerId, matchSeq: 1, job });
        } else {
          session.send({ type: 'parked', offerId: frame.offerId });
        }
        return;
      case 'offer.cancel':
        session.send({ type: 'offer.cancelled', offerId: frame.offerId });
        return;
      case 'job.status':
      case 'heartbeat':
        session.send({ type: 'ack', ref: frame.ref });
        return;
      default:
        return;
    }
  });
  return { matcher, base };
}

/** Every report the frames carried, in order (a frame's `earlier` reports come before its own). */
function statusTrail(frames: PilotMessage[]): string[] {
  return frames.flatMap((frame) =>
    frame.type === 'job.status'
      ? [...(frame.earlier ?? []), frame].map((report) => `${report.status ?? ''}/${report.minorStatus ?? ''}`)
      : [],
  );
}

test('in process: one job from match to Done, output sandbox uploaded, then idle exit with bye', async () => {
  const job = matchedJob(21, {
    cores: 1,
    description: {
      executable: 'sh',
      arguments: ['-c', 'echo result > out.txt; sleep 0.2'],
      outputSandbox: ['out.txt'],
    },
  });
  const { matcher, base } = await scriptedMatcher(job);
  const workdir = await mkdtemp(path.join(tmpdir(), 'pilot-int-'));
  const logger = silentLogger();
  const link = new WsMatcherLink({
    matcher: MatcherEndpoints.single(base),
    token: 'pilot-token',
    hello: {
      pilotStamp: 'int-1',
      pilotVersion: 'test',
      site: 'Test.site',
      ce: null,
      queue: null,
      node: { hostname: 'h', cores: 2, memoryMB: 1000, os: 'linux', arch: 'x64', cpuModel: 'c' },
    },
    logger,
    backoff: { initialDelayMs: 10, maxDelayMs: 50, jitter: 0 },
  });
  const runner = new JobRunner({
    workdir,
    site: 'Test.site',
    ce: null,
    keepWorkdirs: false,
    killGraceMs: 500,
    appStatusPollMs: 1000,
    maxOutputSandboxBytes: 1024 * 1024,
    unpackLimits: { maxBytes: 1024 * 1024, maxEntries: 100 },
    transfer: new HttpSandboxTransfer({
      matcher: MatcherEndpoints.single(base),
      maxDownloadBytes: 1024 * 1024,
      attempts: 3,
      backoff: { initialDelayMs: 5, maxDelayMs: 10, jitter: 0 },
      logger,
    }),
    baseEnv: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
    clock: systemClock,
    logger,
  });
  matcher.putFailures = [503]; // the first upload attempt fails: the transfer retries
  const loop = new PilotLoop({
    link,
    runner,
    clock: systemClock,
    logger,
    slot: new Slot({
      cores: 2,
      memoryMB: 1000,
      wallTimeSec: null,
      startMs: Date.now(),
      tags: [],
      offerWallTimeMarginSec: 60,
      minOfferWallTimeSec: 60,
    }),
    config: { idleTimeoutMs: 300, offerCancelTimeoutMs: 5000, finalFlushTimeoutMs: 5000, offerRefreshMs: 60_000 },
  });
  const exit = await loop.run();

  assert.deepEqual(exit, { reason: 'idle', undeliveredReports: 0, jobsRun: 1, jobsFailed: 0, everConnected: true });
  assert.deepEqual(statusTrail(matcher.frames), [
    'Running/Job Initialization (isolation: none)',
    'Running/Application',
    'Completing/Application Finished Successfully',
    '/Uploading Output Sandbox',
    '/Output Sandbox Uploaded',
    'Done/Execution Complete',
  ]);
  const done = matcher.ofType('job.status').at(-1);
  assert.equal(done?.exitCode, 0);
  assert.ok(done?.outputSandbox !== undefined && matcher.sandboxes.has(done.outputSandbox));
  assert.deepEqual(matcher.sandboxTokens, ['Bearer job-token-21', 'Bearer job-token-21']);
  assert.ok(
    matcher.ofType('heartbeat').some((beat) => beat.jobs.some((j) => j.jobId === 21)),
    'heartbeats named the running job',
  );

  const offers = matcher.ofType('offer');
  assert.deepEqual(offers.map((offer) => [offer.matchSeq, offer.resources.cores]).slice(0, 2), [
    [0, 2],
    [1, 1],
  ]);
  assert.deepEqual(offers.at(-1)?.resources.cores, 2, 'the finished job gave its core back');
  // A heartbeat may fall between the cancel and the goodbye: its timer runs on its own.
  const types = matcher.frames.map((frame) => frame.type).filter((type) => type !== 'heartbeat');
  assert.deepEqual(types.slice(-2), ['offer.cancel', 'bye']);
  assert.equal(matcher.ofType('bye')[0]?.reason, 'idle');
  assert.deepEqual(await readdir(workdir), []);
});

/** What a site director ships per pilot: the bundle must stay under this (issue: a smaller pilot). */
const MAX_BUNDLE_BYTES = 2 * 1024 * 1024;

// (Server-side packages cannot get in: the build refuses them, see scripts/build.mjs.)
test('bundle: dist/pilot.mjs is one file under 2 MiB', async () => {
  const bytes = (await stat(bundle)).size;
  assert.ok(bytes < MAX_BUNDLE_BYTES, `dist/pilot.mjs is ${bytes} bytes, over ${MAX_BUNDLE_BYTES}`);
});

test('bundle: the build says what each package adds to the pilot, and nothing of the server is in it', async () => {
  const parts = JSON.parse(await readFile(path.join(path.dirname(bundle), 'pilot-parts.json'), 'utf8')) as Record<
    string,
    number
  >;
  for (const part of ['pilot/', 'shared/', 'ws', 'zod', 'pino', 'commander', 'execa', 'tar']) {
    assert.ok((parts[part] ?? 0) > 0, `${part} is counted`);
  }
  for (const serverPackage of ['better-sqlite3', 'pg', 'node-cron', 'undici', 'prom-client']) {
    assert.equal(parts[serverPackage], undefined, `${serverPackage} is not in the pilot`);
  }
  // The program is the bundle but for its loader and the escaping of the program as a string.
  const program = Object.values(parts).reduce((sum, bytes) => sum + bytes, 0);
  const bytes = (await stat(bundle)).size;
  assert.ok(program <= bytes && program > 0.9 * bytes, `parts add up to ${program} of ${bytes} bytes`);
});

test('bundle: dist/pilot.mjs runs a job and exits 0; a refused token exits 3', async () => {
  assert.ok(existsSync(bundle), 'dist/pilot.mjs must be built first (npm run build; npm test does it)');
  const job = matchedJob(5, { description: { executable: 'echo', arguments: ['bundled'] } });
  const { matcher, base } = await scriptedMatcher(job);
  const dir = await mkdtemp(path.join(tmpdir(), 'pilot-bundle-'));
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, 'pilot-token\n');
  const runBundle = async (): Promise<{ code: number | null; stderr: string }> => {
    const child = spawn(
      process.execPath,
      [
        bundle,
        '--matcher',
        base,
        '--token-file',
        tokenFile,
        '--workdir',
        path.join(dir, 'work'),
        '--idle-timeout-sec',
        '1',
        '--cores',
        '1',
        '--stamp',
        'bundle-1',
      ],
      {
        cwd: dir,
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
      },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    return { code, stderr };
  };

  const ok = await runBundle();
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(matcher.ofType('hello')[0]?.pilotStamp, 'bundle-1');
  assert.equal(matcher.ofType('job.status').at(-1)?.status, 'Done', ok.stderr);
  assert.match(ok.stderr, /"msg":"job finished"/);

  matcher.refuseWith = 401;
  const refused = await runBundle();
  assert.equal(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, /refused the pilot token/);
});

test('bundle: --isolation bwrap where bubblewrap cannot run exits 2 naming --isolation, without saying hello', async () => {
  const { matcher, base } = await scriptedMatcher(matchedJob(6));
  const dir = await mkdtemp(path.join(tmpdir(), 'pilot-isolation-'));
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, 'pilot-token\n');
  // A PATH with no bwrap on it: the isolation check (run beside the node's probes) must still refuse.
  const emptyPath = path.join(dir, 'bin');
  await mkdir(emptyPath);
  const child = spawn(
    process.execPath,
    [bundle, '--matcher', base, '--token-file', tokenFile, '--workdir', path.join(dir, 'work'), '--isolation', 'bwrap'],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: emptyPath } },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 2, stderr);
  assert.match(stderr, /--isolation: bwrap: bubblewrap is not installed/);
  // The pilot may have connected early (it does while probing): whatever it sent on a connection has
  // been read once the matcher has seen that connection close.
  await Promise.all(
    matcher.sessions.map((session) =>
      session.socket.readyState === session.socket.CLOSED ? undefined : once(session.socket, 'close'),
    ),
  );
  assert.equal(matcher.ofType('hello').length, 0, 'a pilot that cannot isolate as asked never says hello');
});

test('bundle: SIGTERM drains (the running job finishes), a second SIGTERM kills it', async () => {
  assert.ok(existsSync(bundle), 'dist/pilot.mjs must be built first (npm run build; npm test does it)');
  const dir = await mkdtemp(path.join(tmpdir(), 'pilot-signal-'));
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, 'pilot-token\n');

  const runUntilApplication = async (
    seconds: string,
    signals: number,
  ): Promise<{ code: number | null; matcher: MiniMatcher }> => {
    const { matcher, base } = await scriptedMatcher(
      matchedJob(9, { description: { executable: 'sleep', arguments: [seconds] } }),
    );
    const application = new Promise<void>((resolve) => {
      matcher.on('frame', (frame) => {
        if (frame.type === 'job.status' && statusTrail([frame]).includes('Running/Application')) resolve();
      });
    });
    const child = spawn(
      process.execPath,
      [bundle, '--matcher', base, '--token-file', tokenFile, '--workdir', path.join(dir, 'work'), '--cores', '1'],
      {
        cwd: dir,
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    const drainLogged = new Promise<void>((resolve) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes('"msg":"drain requested"')) resolve();
      });
    });
    const exited = once(child, 'exit') as Promise<[number | null]>;
    await application;
    child.kill('SIGTERM');
    if (signals > 1) {
      await drainLogged; // signals sent back to back would be merged into one
      child.kill('SIGTERM');
    }
    const [code] = await exited;
    return { code, matcher };
  };

  const drained = await runUntilApplication('0.3', 1);
  assert.equal(drained.code, 0);
  assert.equal(drained.matcher.ofType('job.status').at(-1)?.status, 'Done');
  assert.equal(drained.matcher.ofType('bye')[0]?.reason, 'drained');

  const killed = await runUntilApplication('100', 2);
  assert.equal(killed.code, 0);
  const last = killed.matcher.ofType('job.status').at(-1);
  assert.deepEqual([last?.status, last?.minorStatus], ['Failed', 'Pilot terminated']);
  assert.equal(killed.matcher.ofType('bye')[0]?.reason, 'terminated');
});
