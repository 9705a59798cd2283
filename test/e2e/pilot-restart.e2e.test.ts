/**
 * The matcher goes away for 20 s while a job runs, and comes back on the same data directory and port.
 * The pilot keeps the job running, buffers its status reports (and the output upload retries), then
 * reconnects and replays: no report is lost, none is recorded twice, and the job ends Done with its
 * output. The payload moves on only when the test lets it (release files), so what happens during
 * the outage is certain, not a matter of timing.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { waitFor } from '../helpers/wait.ts';

const OUTAGE_MS = 20_000;

interface HistoryEntry {
  at: string;
  status: string;
  minorStatus: string;
  applicationStatus: string;
  source: string;
  applied: boolean;
}

describe('pilot agent - matcher restart', () => {
  let m: TestMatcher | null = null;
  let pilot: PilotProcess | null = null;
  after(async () => {
    if (pilot && pilot.child.exitCode === null) {
      pilot.child.kill('SIGTERM');
      await waitFor(async () => pilot?.log().includes('"msg":"drain requested"'), 'drain', 10_000).catch(() => {});
      if (pilot.child.exitCode === null) pilot.child.kill('SIGTERM');
      await pilot.exited;
    }
    await m?.close();
  });

  it('the matcher stopped for 20 s and restarted loses no status update of a job that kept running', async () => {
    const first = await startTestMatcher({ heartbeatIntervalSec: 1 });
    m = first;
    const { port } = first.matcher;
    const pilotToken = await first.pilotToken('local');
    pilot = await spawnPilot({
      matcherUrl: first.url,
      token: pilotToken,
      args: [
        '--site',
        'Restart.site',
        '--stamp',
        'restart-1',
        '--cores',
        '1',
        '--idle-timeout-sec',
        '600',
        '--drain-file',
        'none',
        // The payloads wait for files the test writes in its scratch directory: no container.
        '--isolation',
        'none',
        '--log-level',
        'debug',
      ],
    });
    const p = pilot;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-restart-'));
    const script = [
      'echo phase-1 > "$PILOTHOUSE_APP_STATUS_FILE"',
      `while [ ! -e ${dir}/go1 ]; do sleep 0.05; done`,
      'echo phase-2 > "$PILOTHOUSE_APP_STATUS_FILE"',
      `while [ ! -e ${dir}/go2 ]; do sleep 0.05; done`,
      'echo phase-3 > "$PILOTHOUSE_APP_STATUS_FILE"',
      'mkdir -p out && echo "made during the outage" > out/result.txt',
      `while [ ! -e ${dir}/go3 ]; do sleep 0.05; done`,
    ].join('; ');
    const submitted = await first.api('POST', '/api/jobs', {
      json: {
        executable: '/bin/sh',
        arguments: ['-c', script],
        outputSandbox: ['out/result.txt'],
        requirements: { sites: ['Restart.site'] },
      },
    });
    assert.equal(submitted.status, 201);
    const [id] = submitted.body.jobIds as number[];
    await waitFor(
      async () => (await first.api('GET', `/api/jobs/${id}`)).body.applicationStatus === 'phase-1',
      'phase-1 at the matcher',
    );

    // The matcher goes away. The job keeps running; its reports queue up on the pilot.
    const mark = p.log().length;
    const stoppedAt = Date.now();
    await first.matcher.stop();
    await waitFor(async () => /"msg":"disconnected"/.test(p.log().slice(mark)), 'the pilot to notice');
    await writeFile(path.join(dir, 'go1'), '');
    await waitFor(
      async () =>
        /"applicationStatus":"phase-2"[^\n]*"connected":false[^\n]*"msg":"report queued"/.test(p.log().slice(mark)),
      'phase-2 queued while disconnected',
    );
    await writeFile(path.join(dir, 'go2'), '');
    await waitFor(
      async () => /"applicationStatus":"phase-3"[^\n]*"msg":"report queued"/.test(p.log().slice(mark)),
      'phase-3 queued while disconnected',
    );
    await writeFile(path.join(dir, 'go3'), '');
    // The payload ends during the outage: Completing, then the output upload retries.
    await waitFor(
      async () => /"msg":"sandbox transfer retry"/.test(p.log().slice(mark)),
      'the output upload to be retrying',
    );
    const remaining = OUTAGE_MS - (Date.now() - stoppedAt);
    if (remaining > 0) await new Promise((resolve) => setTimeout(resolve, remaining)); // the outage itself, not a wait for state
    assert.equal(p.child.exitCode, null, 'the pilot rode out the outage');

    // Same data directory, same port.
    const second = await startTestMatcher({
      heartbeatIntervalSec: 1,
      dataDir: first.dataDir,
      raw: { listen: `127.0.0.1:${port}` },
    });
    m = second;
    const job = await waitFor(
      async () => {
        const body = (await second.api('GET', `/api/jobs/${id}`)).body;
        return body.status === 'Done' || body.status === 'Failed' ? body : undefined;
      },
      'the job to end after the restart',
      180_000,
    );
    assert.equal(job.status, 'Done', JSON.stringify(job));
    assert.equal(job.minorStatus, 'Execution Complete');
    assert.equal(job.exitCode, 0);
    assert.equal(job.applicationStatus, 'phase-3');

    // Every report the pilot queued is in the history exactly once, applied.
    const history = job.history as HistoryEntry[];
    const queued = p
      .log()
      .split('\n')
      .filter((line) => line.includes('"msg":"report queued"') && line.includes(`"jobId":${id}`))
      .map(
        (line) => JSON.parse(line) as { at: string; status?: string; minorStatus?: string; applicationStatus?: string },
      );
    assert.ok(queued.length >= 8, `the pilot queued ${queued.length} reports`);
    for (const report of queued) {
      const matches = history.filter(
        (h) =>
          h.at === new Date(report.at).toISOString() &&
          h.source.startsWith('Pilot') &&
          (report.minorStatus === undefined || h.minorStatus === report.minorStatus) &&
          (report.applicationStatus === undefined || h.applicationStatus === report.applicationStatus),
      );
      assert.equal(matches.length, 1, `report ${JSON.stringify(report)} recorded once (found ${matches.length})`);
      assert.equal(matches[0]?.applied, true, `report ${JSON.stringify(report)} applied`);
    }
    const appStatuses = history.filter((h) => h.source === 'Pilot').map((h) => h.applicationStatus);
    for (const phase of ['phase-1', 'phase-2', 'phase-3'])
      assert.ok(appStatuses.includes(phase), `${phase} in the history`);
    assert.deepEqual(
      history
        .filter((h) => h.applied)
        .map((h) => h.status)
        .filter((s, i, all) => s !== all[i - 1]),
      ['Received', 'Checking', 'Waiting', 'Matched', 'Running', 'Completing', 'Done'],
    );

    // The output made during the outage arrived.
    const response = await fetch(`${second.url}/api/jobs/${id}/output`, {
      headers: { authorization: `Bearer ${second.adminToken}` },
    });
    assert.equal(response.status, 200);
    const out = await mkdtemp(path.join(os.tmpdir(), 'ph-restart-out-'));
    await writeFile(path.join(out, 'o.tar.gz'), Buffer.from(await response.arrayBuffer()));
    await tar.x({ file: path.join(out, 'o.tar.gz'), cwd: out });
    assert.equal(await readFile(path.join(out, 'out', 'result.txt'), 'utf8'), 'made during the outage\n');
    // The pilot is known to the restarted matcher again.
    const record = (await second.api('GET', '/api/pilots/restart-1')).body;
    assert.equal(record.status, 'Running');
  });
});
