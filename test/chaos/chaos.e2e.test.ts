/**
 * A small chaos run on every test run (`npm run chaos` runs it at any size and writes the figures):
 * 4 real pilots, 120 jobs of 1 s; the matcher SIGKILLed twice, two pilots SIGKILLed in the middle of a
 * job and one holding a match it had not started, one frozen (SIGSTOP) beyond the liveness timeout and
 * resumed. Every job must end Done exactly once, in its final attempt, with that attempt's output; the
 * store's invariants must hold at each crash point and at the end. Liveness timeouts are short so the run takes about a minute.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { runChaos } from './chaos-run.ts';

it(
  'chaos - matcher and pilots killed (one holding an unstarted match), a pilot frozen: every job Done once, in its final attempt, invariants hold',
  { timeout: 600_000 },
  async () => {
    const report = await runChaos({
      jobs: 120,
      pilots: 4,
      pilotCores: 1,
      jobSec: 1,
      matcherKills: 2,
      pilotKills: 2,
      matchedKills: 1,
      freezes: 1,
      matcherDownSec: 0.5,
      pauseSec: 1,
      pilotTimeoutSec: 2,
      reconnectGraceSec: 2,
      heartbeatIntervalSec: 1,
      faultSweepIntervalSec: 0.5,
      rescheduleDelaysSec: '0',
      timeoutSec: 300,
      progress: (message) => console.log(`# ${message}`),
    });
    console.log(`# ${JSON.stringify({ ...report, options: undefined })}`);
    assert.deepEqual(report.violations, []);
    assert.equal(report.crashPointChecks, 2);
    assert.equal(report.reconnectMs.length, 2);
    assert.equal(report.killedPilotJobBackMs.length, 2);
    assert.equal(report.matchedKillJobBackMs.length, 1, 'the job a killed pilot held unstarted ran again');
    assert.equal(report.freezeDetectedMs.length, 1);
    // A kill and the freeze may hit the same job (its second attempt): at least one job ran again.
    assert.ok(report.retried >= 1, `the killed and frozen pilots' jobs ran again (${report.retried} retried)`);
  },
);
