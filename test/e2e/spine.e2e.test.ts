/**
 * The spine end to end: a real matcher on port 0 with a fresh SQLite file, real `dist/pilot.mjs`
 * child processes, jobs submitted over REST, outputs downloaded and unpacked.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { canTransition, FINAL_STATUSES, type JobStatus } from '../../shared/job/status.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { PILOT_BUNDLE, spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { waitFor } from '../helpers/wait.ts';

describe('spine - submit, match, run, Done', () => {
  let m: TestMatcher;
  let pilotToken: string;
  const pilots: PilotProcess[] = [];

  before(async () => {
    m = await startTestMatcher();
    pilotToken = await m.pilotToken('local');
  });
  after(async () => {
    await Promise.all(pilots.splice(0).map((p) => p.stop()));
    await m.close();
  });

  const submit = async (jobs: unknown): Promise<number[]> => {
    const response = await m.api('POST', '/api/jobs', { json: jobs });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    return response.body.jobIds;
  };
  const finalJobs = (ids: number[], timeoutMs = 120_000) =>
    waitFor(
      async () => {
        const { body } = await m.api('POST', '/api/jobs/search', { json: { ids, perPage: ids.length } });
        return body.jobs.every((j: { status: JobStatus }) => FINAL_STATUSES.has(j.status))
          ? (body.jobs as any[])
          : undefined;
      },
      `${ids.length} job(s) to finish`,
      timeoutMs,
    );
  const startPilots = async (count: number, args: string[] = []) => {
    const started = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        spawnPilot({
          matcherUrl: m.url,
          token: pilotToken,
          // Payloads append marker lines to a file of the test: no container (test/e2e/payload-isolation has them).
          args: [
            ...['--site', 'Local.test', '--idle-timeout-sec', '600', '--stamp', `e2e-${pilots.length + i}`],
            ...['--isolation', 'none', ...args],
          ],
        }),
      ),
    );
    pilots.push(...started);
    return started;
  };
  const unpackOutput = async (jobId: number): Promise<string> => {
    const response = await fetch(`${m.url}/api/jobs/${jobId}/output`, {
      headers: { authorization: `Bearer ${m.adminToken}` },
    });
    assert.equal(response.status, 200);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-out-'));
    const archive = path.join(dir, 'output.tar.gz');
    await writeFile(archive, Buffer.from(await response.arrayBuffer()));
    await tar.x({ file: archive, cwd: dir });
    return dir;
  };

  it('a job runs on a real pilot and its output files hold the expected text', async () => {
    await startPilots(1, ['--cores', '2']);
    const [id] = await submit({
      name: 'writer',
      executable: '/bin/sh',
      arguments: [
        '-c',
        'mkdir -p out && echo "result for $PILOTHOUSE_JOB_ID" > out/result.txt && echo to-stdout && echo to-stderr >&2',
      ],
      outputSandbox: ['out/*.txt'],
    });
    const [job] = await finalJobs([id as number]);
    assert.equal(job.status, 'Done');
    assert.equal(job.minorStatus, 'Execution Complete');
    assert.equal(job.exitCode, 0);
    assert.equal(job.site, 'Local.test');
    assert.ok(job.pilotId.startsWith('e2e-'));
    const dir = await unpackOutput(id as number);
    assert.equal(await readFile(path.join(dir, 'out', 'result.txt'), 'utf8'), `result for ${id}\n`);
    assert.equal(await readFile(path.join(dir, 'std.out'), 'utf8'), 'to-stdout\n');
    assert.equal(await readFile(path.join(dir, 'std.err'), 'utf8'), 'to-stderr\n');
  });

  it('a failing executable ends Failed with its exit code in the minor status', async () => {
    const [failing, missing] = await submit([
      { executable: '/bin/sh', arguments: ['-c', 'echo boom >&2; exit 7'] },
      { executable: 'no-such-program-anywhere' },
    ]);
    const jobs = await finalJobs([failing as number, missing as number]);
    const byId = new Map(jobs.map((j) => [j.id, j]));
    const failed = byId.get(failing);
    assert.equal(failed.status, 'Failed');
    assert.equal(failed.exitCode, 7);
    assert.match(failed.minorStatus, /exit code 7/);
    const notFound = byId.get(missing);
    assert.equal(notFound.status, 'Failed');
    assert.equal(notFound.minorStatus, 'Application not found');
    const dir = await unpackOutput(failing as number);
    assert.equal(await readFile(path.join(dir, 'std.err'), 'utf8'), 'boom\n');
  });

  it('4 pilots × 200 jobs: every job Done exactly once, histories follow the state machine', async () => {
    await startPilots(3, ['--cores', '2']);
    const markerDir = await mkdtemp(path.join(os.tmpdir(), 'ph-markers-'));
    const markers = path.join(markerDir, 'markers.txt');
    const ids = await submit(
      Array.from({ length: 200 }, (_, i) => ({
        name: `marker-${i}`,
        executable: '/bin/sh',
        arguments: ['-c', `echo "$PILOTHOUSE_JOB_ID $PILOTHOUSE_JOB_ATTEMPT" >> ${markers}`],
      })),
    );
    const jobs = await finalJobs(ids, 300_000);
    assert.deepEqual(
      jobs.map((j) => j.status).filter((s) => s !== 'Done'),
      [],
    );
    const lines = (await readFile(markers, 'utf8')).trim().split('\n');
    assert.equal(lines.length, 200, 'each job ran exactly once');
    assert.deepEqual(
      lines.map((line) => Number(line.split(' ')[0])).sort((a, b) => a - b),
      ids,
    );
    const pilotsUsed = new Set(jobs.map((j) => j.pilotId));
    assert.ok(pilotsUsed.size >= 2, `work spread over pilots (${[...pilotsUsed].join(', ')})`);
    for (const id of ids) {
      const { body } = await m.api('GET', `/api/jobs/${id}`);
      const applied: JobStatus[] = body.history
        .filter((h: { applied: boolean }) => h.applied)
        .map((h: { status: JobStatus }) => h.status);
      assert.deepEqual(applied.slice(0, 4), ['Received', 'Checking', 'Waiting', 'Matched']);
      assert.equal(applied.filter((s) => s === 'Done').length, 1);
      assert.equal(applied.filter((s) => s === 'Matched').length, 1);
      for (let i = 1; i < applied.length; i += 1) {
        assert.ok(
          canTransition(applied[i - 1] as JobStatus, applied[i] as JobStatus),
          `job ${id}: ${applied[i - 1]} → ${applied[i]}`,
        );
      }
    }
  });

  it('the bundle copied alone into an empty directory runs a job end to end', async () => {
    const lonely = await mkdtemp(path.join(os.tmpdir(), 'ph-lonely-'));
    const bundle = path.join(lonely, 'pilot.mjs');
    await copyFile(PILOT_BUNDLE, bundle);
    const pilot = await spawnPilot({
      matcherUrl: m.url,
      token: pilotToken,
      bundle,
      cwd: lonely,
      args: ['--site', 'Lonely.site', '--idle-timeout-sec', '600'],
    });
    pilots.push(pilot);
    const [id] = await submit({ executable: 'echo', arguments: ['alone'], requirements: { sites: ['Lonely.site'] } });
    const [job] = await finalJobs([id as number]);
    assert.equal(job.status, 'Done');
    assert.equal(job.site, 'Lonely.site');
  });

  it('an idle pilot exits 0 on its own and reports why', async () => {
    const [idle] = await startPilots(1, ['--idle-timeout-sec', '1', '--site', 'Idle.site']);
    assert.equal(await idle?.exited, 0);
    const stamp = pilots.length - 1;
    const { body } = await m.api('GET', `/api/pilots/e2e-${stamp}`);
    assert.equal(body.status, 'Done');
    assert.match(body.statusReason, /idle/);
  });
});
