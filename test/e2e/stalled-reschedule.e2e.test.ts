/**
 * A pilot dies (SIGKILL) while its job runs. Its connection closes without a bye, so the matcher marks
 * the job Stalled at once (no sweep needed); the fault sweeper sees the pilot gone and reschedules it
 * with a new attempt; a second real pilot runs that attempt to Done.
 * The payload of the first attempt is held by a release file, so it can never finish first.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { waitFor } from '../helpers/wait.ts';

describe('fault sweeper, end to end', () => {
  let m: TestMatcher | null = null;
  const pilots: PilotProcess[] = [];
  let releaseFile = '';
  after(async () => {
    if (releaseFile) await writeFile(releaseFile, '').catch(() => {});
    for (const pilot of pilots) await pilot.stop('SIGKILL');
    await m?.close();
  });

  it('a job whose pilot was killed is rescheduled and runs to Done on another pilot, as attempt 2', async () => {
    m = await startTestMatcher({
      heartbeatIntervalSec: 1,
      config: {
        // Sweeps run when the test asks (matcher.sweepFaults), with a one-second stall time.
        faultSweepIntervalMs: 3_600_000,
        faultSweeper: {
          stalledAfterSec: 1,
          failStalledAfterSec: 3600,
          matchedTimeoutSec: 3600,
          reconnectGraceSec: 90,
          maxAttempts: 3,
          rescheduleDelaysSec: [0],
        },
      },
    });
    const matcher = m;
    const token = await matcher.pilotToken('local');
    const pilotArgs = (stamp: string) => [
      '--site',
      'Sweep.site',
      '--stamp',
      stamp,
      '--cores',
      '1',
      '--drain-file',
      'none',
      // Attempt 1 waits for a release file the test writes in its scratch directory: no container.
      '--isolation',
      'none',
    ];
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-sweep-'));
    releaseFile = path.join(dir, 'release');
    // Attempt 1 waits for the release file; attempt 2 (PILOTHOUSE_JOB_ATTEMPT=2) finishes at once.
    const script = `if [ "$PILOTHOUSE_JOB_ATTEMPT" = 1 ]; then while [ ! -e ${releaseFile} ]; do sleep 0.05; done; fi; echo attempt $PILOTHOUSE_JOB_ATTEMPT`;
    const submitted = await matcher.api('POST', '/api/jobs', {
      json: { executable: '/bin/sh', arguments: ['-c', script], requirements: { sites: ['Sweep.site'] } },
    });
    assert.equal(submitted.status, 201);
    const [id] = submitted.body.jobIds as number[];
    const job = async () => (await matcher.api('GET', `/api/jobs/${id}`)).body;

    const first = await spawnPilot({ matcherUrl: matcher.url, token, args: pilotArgs('sweep-1') });
    pilots.push(first);
    await waitFor(async () => (await job()).status === 'Running', 'attempt 1 running');
    await first.stop('SIGKILL');
    await waitFor(async () => (await job()).status === 'Stalled', 'attempt 1 Stalled as its connection closed');

    // Sweep until the job is back in line (the pilot is gone and the job silent for a second).
    await waitFor(async () => {
      await matcher.matcher.sweepFaults();
      const now = await job();
      return now.status === 'Waiting' && now.attempt === 2;
    }, 'the job rescheduled as attempt 2');

    const second = await spawnPilot({ matcherUrl: matcher.url, token, args: pilotArgs('sweep-2') });
    pilots.push(second);
    const done = await waitFor(async () => {
      const now = await job();
      return now.status === 'Done' ? now : undefined;
    }, 'attempt 2 Done');
    assert.deepEqual([done.attempt, done.pilotId], [2, 'sweep-2']);
    const steps = (done.history as { attempt: number; status: string; minorStatus: string; source: string }[]).map(
      (h) => `${h.attempt} ${h.status} ${h.source}`,
    );
    const stalledAt = steps.indexOf('1 Stalled PilotLiveness');
    assert.ok(stalledAt > steps.indexOf('1 Running Pilot'), steps.join(' | '));
    assert.equal(steps[stalledAt + 1], '1 Rescheduled FaultSweeper');
    assert.equal(steps[stalledAt + 2], '2 Waiting FaultSweeper');
    assert.equal(steps.at(-1), '2 Done Pilot');
  });
});
