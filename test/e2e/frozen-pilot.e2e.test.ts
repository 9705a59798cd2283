/**
 * A real pilot process is frozen (SIGSTOP) in the middle of a job: its TCP connection stays up, it
 * answers no ping. The matcher drops it within the configured liveness timeout, marks the job Stalled,
 * and after the reconnect grace period reschedules it; a second real pilot runs attempt 2 to Done.
 * The frozen pilot is then resumed (SIGCONT) and its payload allowed to finish: nothing it reports
 * touches attempt 2. Timeouts are configured short; the sweeper runs on its own timer.
 */
import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../shared/logger.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { waitFor } from '../helpers/wait.ts';

const LIVENESS = { pingIntervalMs: 200, timeoutMs: 1_000 };
let m: TestMatcher | null = null;
const pilots: PilotProcess[] = [];
let releaseFile = '';
const logs: Record<string, unknown>[] = [];

after(async () => {
  if (releaseFile) await writeFile(releaseFile, '').catch(() => {});
  for (const pilot of pilots) {
    pilot.child.kill('SIGCONT');
    await pilot.stop('SIGKILL');
  }
  await m?.close();
});

it('frozen pilot - dropped within the liveness timeout; the job is Done on another pilot as attempt 2; the resumed pilot cannot touch it', async () => {
  m = await startTestMatcher({
    heartbeatIntervalSec: 1,
    logger: createLogger({
      component: 'matcher',
      level: 'info',
      destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
    }),
    config: {
      pilotLiveness: LIVENESS,
      faultSweepIntervalMs: 250,
      faultSweeper: {
        stalledAfterSec: 600,
        failStalledAfterSec: 3600,
        matchedTimeoutSec: 3600,
        reconnectGraceSec: 2,
        maxAttempts: 3,
        rescheduleDelaysSec: [0],
      },
    },
  });
  const matcher = m;
  const token = await matcher.pilotToken('local');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-frozen-'));
  await chmod(dir, 0o755);
  releaseFile = path.join(dir, 'release');
  // Payloads run isolated as by default; the directory of the release file is shown to them read-only.
  const pilotArgs = (stamp: string) => [
    ...['--site', 'Frozen.site', '--stamp', stamp, '--cores', '1', '--drain-file', 'none'],
    ...['--isolation-ro-paths', dir],
  ];
  // Attempt 1 waits for the release file; attempt 2 finishes at once.
  const script = `if [ "$PILOTHOUSE_JOB_ATTEMPT" = 1 ]; then while [ ! -e ${releaseFile} ]; do sleep 0.05; done; fi; echo attempt $PILOTHOUSE_JOB_ATTEMPT`;
  const submitted = await matcher.api('POST', '/api/jobs', {
    json: { executable: '/bin/sh', arguments: ['-c', script], requirements: { sites: ['Frozen.site'] } },
  });
  assert.equal(submitted.status, 201);
  const [id] = submitted.body.jobIds as number[];
  const job = async () => (await matcher.api('GET', `/api/jobs/${id}`)).body;

  const first = await spawnPilot({ matcherUrl: matcher.url, token, args: pilotArgs('frozen-1') });
  pilots.push(first);
  await waitFor(async () => (await job()).minorStatus === 'Application', 'attempt 1 running its payload');
  first.child.kill('SIGSTOP');

  const stalled = await waitFor(async () => {
    const now = await job();
    return now.status === 'Stalled' ? now : undefined;
  }, 'attempt 1 Stalled by liveness');
  const drop = logs.find((r) => r.msg === 'pilot connection unresponsive, dropped' && r.pilotId === 'frozen-1');
  assert.ok(drop, 'the matcher logged the drop naming the pilot');
  const silentMs = drop.silentMs as number;
  assert.ok(
    silentMs >= LIVENESS.timeoutMs && silentMs < LIVENESS.timeoutMs + 2 * LIVENESS.pingIntervalMs,
    `dropped after ${silentMs} ms of silence: the first liveness round past the timeout`,
  );
  assert.equal((stalled.history as { source: string }[]).at(-1)?.source, 'PilotLiveness');

  const second = await spawnPilot({ matcherUrl: matcher.url, token, args: pilotArgs('frozen-2') });
  pilots.push(second);
  const done = await waitFor(async () => {
    const now = await job();
    return now.status === 'Done' ? now : undefined;
  }, 'attempt 2 Done on the second pilot');
  assert.deepEqual([done.attempt, done.pilotId], [2, 'frozen-2']);

  // Resume the frozen pilot and let its payload of attempt 1 end: it reconnects and reports, refused.
  first.child.kill('SIGCONT');
  await writeFile(releaseFile, '');
  await waitFor(async () => /report dropped/.test(first.log()), 'the resumed pilot told no');
  const refusals = first
    .log()
    .split('\n')
    .filter((line) => line.includes('"msg":"report dropped"'))
    .map((line) => (JSON.parse(line) as { code: string }).code);
  assert.ok(refusals.length > 0 && refusals.every((code) => code === 'FORBIDDEN'), refusals.join(','));

  const final = await job();
  assert.deepEqual([final.status, final.attempt, final.pilotId], ['Done', 2, 'frozen-2']);
  const steps = (final.history as { attempt: number; status: string; source: string }[]).map(
    (h) => `${h.attempt} ${h.status} ${h.source}`,
  );
  const stalledAt = steps.indexOf('1 Stalled PilotLiveness');
  assert.ok(stalledAt > steps.indexOf('1 Running Pilot'), steps.join(' | '));
  assert.equal(steps[stalledAt + 1], '1 Rescheduled FaultSweeper', steps.join(' | '));
  assert.equal(steps.at(-1), '2 Done Pilot', 'nothing of attempt 1 after attempt 2 ended');
  assert.ok(
    steps.slice(stalledAt + 2).every((step) => step.startsWith('2 ')),
    `after the reschedule only attempt 2 writes: ${steps.join(' | ')}`,
  );
});
