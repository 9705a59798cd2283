/**
 * The director under faults, with a real matcher and real local pilots:
 *  - a CE that hangs (a SLURM login node whose commands never answer) times out within its budget,
 *    backs off, and holds up no other CE of the same cycle;
 *  - a CE that answers garbage (the HTCondor replica printing an HTML error page, or a submission that
 *    is not `-terse`) is a CE error with backoff, never a crash; it recovers once its backoff is over;
 *  - pilots that end without ever reaching the matcher (missed) throttle their CE;
 *  - pilots that reach it and match nothing make their queue back off;
 *  - a matcher that is down pauses the cycle, and the director resumes when it is back.
 * HTCondor cannot run here: its CE is the replica in test/fixtures/fake-condor.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../shared/logger.ts';
import type { DirectorReport, QueueDecision } from '../../shared/protocol/site-director.ts';
import { parseDirectorConfig } from '../../site-director/config/load.ts';
import { buildDirector } from '../../site-director/service.ts';
import type { SiteDirector } from '../../site-director/director.ts';
import { cyclesUntil } from '../helpers/director.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures');
let m: TestMatcher;
let dir: string;
let director: SiteDirector;
let closeDirector: () => Promise<void>;
let userToken: string;

before(async () => {
  m = await startTestMatcher();
  dir = await mkdtemp(path.join(os.tmpdir(), 'ph-director-faults-'));
  process.env.FAKE_CONDOR_DIR = path.join(dir, 'schedd');
  process.env.PATH = `${path.join(FIXTURES, 'fake-condor')}:${path.join(FIXTURES, 'fake-slurm')}:${process.env.PATH ?? ''}`;
  userToken = await m.userToken('alice', 'lab');
  const config = parseDirectorConfig(
    `
name: faults
cycle: { ceTimeoutSec: 2, parallelCes: 4 }
throttles:
  ceErrors: { initialBackoffSec: 1, maxBackoffSec: 4 }
  emptyPilots: { threshold: 2, initialBackoffSec: 600 }
  missedPilots: { windowSec: 3600, max: 2 }
pilot: { idleTimeoutSec: 2 }
sites:
  - name: LCG.Faults.test
    vos: [lab]
    ces:
      - name: healthy
        type: local
        queues: [{ name: q, maxCores: 1, memoryMB: 1000, tags: [healthy], requiredTags: [healthy], maxPilotsPerCycle: 1, maxWaitingPilots: 1 }]
      - name: hanging
        type: slurm
        slurm: { outputDir: ${dir}/slurm }
        queues: [{ name: q, maxCores: 1, memoryMB: 1000, tags: [healthy], requiredTags: [healthy] }]
      - name: garbage
        type: htcondor
        htcondor: { pool: garbage:9619, workDir: ${dir}/condor }
        queues: [{ name: q, maxCores: 1, memoryMB: 1000, tags: [condor], requiredTags: [condor], maxPilotsPerCycle: 1, maxWaitingPilots: 1 }]
      - name: missing
        type: local
        queues:
          - { name: q, maxCores: 1, memoryMB: 1000, tags: [missed], requiredTags: [missed], maxWaitingPilots: 1, maxPilotsPerCycle: 1, pilot: { extraArgs: [--no-such-option] } }
      - name: empty
        type: local
        queues:
          - { name: q, maxCores: 1, memoryMB: 1000, tags: [empty], requiredTags: [empty], maxWaitingPilots: 1, maxPilotsPerCycle: 1, pilot: { extraArgs: [--memory-mb, '1'] } }
`,
    path.join(dir, 'faults.yaml'),
  );
  const built = buildDirector({
    config,
    matcherUrls: [m.url],
    tokenFile: m.matcher.adminTokenPath,
    logger: silentLogger(),
  });
  director = built.director;
  closeDirector = built.close;
});

after(async () => {
  await closeDirector();
  await m.close();
  await rm(dir, { recursive: true, force: true });
});

async function submit(tag: string, count: number, memoryMB = 100): Promise<number[]> {
  const response = await m.api('POST', '/api/jobs', {
    token: userToken,
    json: Array.from({ length: count }, () => ({
      executable: '/bin/true',
      requirements: { tags: [tag], memoryMB, wallTimeSec: 600 },
    })),
  });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.jobIds;
}

const decisionOf = (report: DirectorReport, ce: string): QueueDecision =>
  report.queues.find((q) => q.ce === ce) as QueueDecision;
const ceOf = (report: DirectorReport, ce: string) => report.ces.find((c) => c.ce === ce);

/** The last report of the cycles run until the condition held. */
async function cycleUntil(
  what: string,
  condition: (report: DirectorReport) => boolean,
  timeoutMs = 60_000,
): Promise<DirectorReport> {
  return (await cyclesUntil(director, what, condition, { timeoutMs, pauseMs: 500 })).at(-1) as DirectorReport;
}

it('faults - a CE that hangs times out within its budget, backs off, and holds up no other CE', async () => {
  await submit('healthy', 2);
  const started = Date.now();
  const report = await director.runCycle();
  const elapsedMs = Date.now() - started;
  assert.ok(elapsedMs < 10_000, `the cycle took ${elapsedMs} ms`);
  assert.equal(decisionOf(report, 'healthy').submitted, 1, 'the healthy CE submitted in the same cycle');
  const hanging = decisionOf(report, 'hanging');
  assert.equal(hanging.submitted, 0);
  assert.match(hanging.reason, /submission failed: .*did not answer within/);
  const state = ceOf(report, 'hanging');
  assert.equal(state?.consecutiveErrors, 1);
  assert.ok(state?.backedOffUntil);
  // Backed off: the next cycle does not even try (the demand is still there).
  const next = await director.runCycle();
  assert.match(decisionOf(next, 'hanging').reason, /throttled: CE backoff after 1 error/);
});

it('faults - a CE answering garbage is a CE error with backoff, never a crash, and recovers', async () => {
  await submit('condor', 1);
  await writeFile(path.join(dir, 'schedd', 'garbage-submit'), '').catch(async () => {
    await import('node:fs/promises').then((fs) => fs.mkdir(path.join(dir, 'schedd'), { recursive: true }));
    await writeFile(path.join(dir, 'schedd', 'garbage-submit'), '');
  });
  const refused = await director.runCycle();
  assert.match(decisionOf(refused, 'garbage').reason, /condor_submit -terse said/);
  assert.equal(ceOf(refused, 'garbage')?.consecutiveErrors, 1);
  await unlink(path.join(dir, 'schedd', 'garbage-submit'));
  // After its backoff (1 s) the CE is tried again and takes pilots: errors are cleared.
  const recovered = await cycleUntil(
    'a pilot at the recovered CE',
    (r) => decisionOf(r, 'garbage').submitted === 1,
    20_000,
  );
  assert.equal(ceOf(recovered, 'garbage')?.consecutiveErrors, 0);
  // Now its status answers are garbage: the pilots are not lost, the CE backs off.
  await writeFile(path.join(dir, 'schedd', 'garbage'), '');
  const confused = await director.runCycle();
  assert.equal(ceOf(confused, 'garbage')?.consecutiveErrors, 1);
  assert.match(ceOf(confused, 'garbage')?.lastError ?? '', /condor_q: not JSON: <html>/);
  await unlink(path.join(dir, 'schedd', 'garbage'));
  const tracked = (await m.api('GET', '/api/pilots?director=faults&ce=garbage')).body.pilots;
  assert.equal(tracked.length, 1);
  assert.notEqual(tracked[0].status, 'Lost');
});

it('faults - pilots that never reach the matcher are missed, and throttle their CE', async () => {
  await submit('missed', 5);
  const report = await cycleUntil('the CE throttled for missed pilots', (r) =>
    /missed pilot/.test(decisionOf(r, 'missing').reason),
  );
  const state = ceOf(report, 'missing');
  assert.ok((state?.missedPilotsInWindow ?? 0) >= 2);
  assert.ok(state?.throttledUntil);
  assert.equal(decisionOf(report, 'missing').submitted, 0);
  assert.ok(
    (decisionOf(report, 'missing').waitingJobs ?? 0) > 0,
    'jobs still wait: the throttle, not the demand, holds it',
  );
  const sent = (await m.api('GET', '/api/pilots?director=faults&ce=missing')).body.total;
  for (let i = 0; i < 3; i += 1) await director.runCycle();
  const pilots = (await m.api('GET', '/api/pilots?director=faults&ce=missing')).body.pilots;
  assert.equal(pilots.length, sent, 'no pilot while the CE is throttled');
  for (const pilot of pilots) {
    assert.equal(pilot.status, 'Failed');
    assert.equal(pilot.connectedAt, null);
    assert.match(pilot.statusReason, /exit code 2: the pilot refused its options/);
    const output = (await m.api('GET', `/api/pilots/${pilot.id}/output`)).body;
    assert.match(output.stderr, /unknown option '--no-such-option'/);
  }
});

it('faults - pilots that match nothing make their queue back off', async () => {
  await submit('empty', 3);
  const report = await cycleUntil('the queue backed off for empty pilots', (r) =>
    /matched nothing 2× in a row/.test(decisionOf(r, 'empty').reason),
  );
  assert.equal(decisionOf(report, 'empty').submitted, 0);
  const sent = (await m.api('GET', '/api/pilots?director=faults&ce=empty')).body.total;
  for (let i = 0; i < 3; i += 1) await director.runCycle();
  const pilots = (await m.api('GET', '/api/pilots?director=faults&ce=empty')).body.pilots;
  assert.equal(pilots.length, sent, 'no pilot while the queue backs off');
  assert.ok(pilots.length >= 2);
  // Each reached the matcher and ran nothing (the last one sent may still be starting).
  assert.ok(pilots.every((p: { jobsMatched: number }) => p.jobsMatched === 0));
  assert.ok(pilots.filter((p: { connectedAt: string | null }) => p.connectedAt !== null).length >= 2);
});

it('faults - a matcher that is down pauses the cycle; the director resumes when it is back', async () => {
  const port = m.matcher.port;
  await m.matcher.stop();
  const paused = await director.runCycle();
  assert.equal(paused.matcherReachable, false);
  assert.ok(paused.queues.every((q) => q.submitted === 0));
  assert.match(paused.queues[0]?.reason ?? '', /paused: cannot reach the matcher/);
  // The same data directory and port, as after a restart.
  const restarted = await startTestMatcher({ dataDir: m.dataDir, raw: { listen: `127.0.0.1:${port}` } });
  m = { ...restarted, dataDir: m.dataDir };
  await submit('healthy', 1);
  const resumed = await cycleUntil(
    'the director resumed',
    (r) => r.matcherReachable && decisionOf(r, 'healthy').pilotsNeeded !== null,
  );
  assert.equal(resumed.matcherReachable, true);
});
