/**
 * The pilot as a worker-node agent, end to end: a real matcher on port 0, real `dist/pilot.mjs`
 * processes, real payloads. Limits (wall clock, memory, stalled), a user's kill reaching the whole
 * process tree, slots (four 1-core jobs side by side, a 2-core job only when two cores are free, GPUs
 * handed out one per job), drains (SIGTERM, drain file, the matcher's drain command, grace time), and
 * the pilot's own log shipped to the matcher. Each test has its own site, so pilots never take each
 * other's jobs. Waits are on real state (job status, files, log lines), never on sleeps.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { JobStatus } from '../../shared/job/status.ts';
import { isAlive } from '../../pilot/process-tree.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { waitFor } from '../helpers/wait.ts';

const CLI = fileURLToPath(new URL('../../dist/cli.mjs', import.meta.url));
const execFileAsync = promisify(execFile);

describe('pilot agent - limits, kills, slots, drains, logs', () => {
  let m: TestMatcher;
  let pilotToken: string;
  const pilots: PilotProcess[] = [];

  before(async () => {
    m = await startTestMatcher({ heartbeatIntervalSec: 1 });
    pilotToken = await m.pilotToken('local');
  });
  after(async () => {
    await Promise.all(pilots.splice(0).map(shutdown));
    await m.close();
  });

  /** Ends a pilot cleanly whatever state it is in: drain, then terminate (its payloads go with it). */
  async function shutdown(pilot: PilotProcess): Promise<void> {
    if (pilot.child.exitCode !== null || pilot.child.signalCode !== null) return;
    pilot.child.kill('SIGTERM');
    await Promise.race([
      waitFor(async () => pilot.log().includes('"msg":"drain requested"'), 'drain logged', 10_000),
      pilot.exited,
    ]);
    if (pilot.child.exitCode === null && pilot.child.signalCode === null) pilot.child.kill('SIGTERM');
    await pilot.exited;
  }

  const startPilot = async (site: string, args: string[] = []): Promise<PilotProcess> => {
    const pilot = await spawnPilot({
      matcherUrl: m.url,
      token: pilotToken,
      args: [
        '--site',
        site,
        '--stamp',
        site.replaceAll('.', '-'),
        '--idle-timeout-sec',
        '600',
        '--drain-file',
        'none',
        // Payloads meet the test through its scratch directory and report their pids: no container.
        '--isolation',
        'none',
        ...args,
      ],
    });
    pilots.push(pilot);
    return pilot;
  };
  const submit = async (jobs: unknown): Promise<number[]> => {
    const response = await m.api('POST', '/api/jobs', { json: jobs });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    return response.body.jobIds;
  };
  const getJob = async (id: number) => (await m.api('GET', `/api/jobs/${id}`)).body;
  const waitStatus = (id: number, statuses: JobStatus[], timeoutMs = 60_000) =>
    waitFor(
      async () => {
        const job = await getJob(id);
        return statuses.includes(job.status) ? job : undefined;
      },
      `job ${id} to reach ${statuses.join('|')}`,
      timeoutMs,
    );
  /** Waits for a log line of the pilot (after `from` characters) matching `pattern`; returns the match. */
  const waitLog = (pilot: PilotProcess, pattern: RegExp, from = 0, timeoutMs = 60_000) =>
    waitFor(async () => pattern.exec(pilot.log().slice(from)) ?? undefined, `pilot log ${pattern}`, timeoutMs);
  const scratch = () => mkdtemp(path.join(os.tmpdir(), 'ph-agent-'));
  /** A payload that records its start, waits for `release`, records its end. */
  const blocker = (dir: string, name: string, extra = '') => ({
    executable: '/bin/sh',
    arguments: [
      '-c',
      `${extra}echo "$(date +%s%N)" > ${dir}/${name}.start; while [ ! -e ${dir}/${name}.release ]; do sleep 0.05; done; echo "$(date +%s%N)" > ${dir}/${name}.end`,
    ],
  });
  const release = (dir: string, name: string) => writeFile(path.join(dir, `${name}.release`), '');
  const stamp = async (dir: string, file: string) => BigInt((await readFile(path.join(dir, file), 'utf8')).trim());

  it('a job over its wall time is killed: Failed / Job has exceeded maximum wall clock time', async () => {
    await startPilot('Wall.site', ['--cores', '1', '--kill-grace-sec', '1']);
    const [id] = await submit({
      executable: 'sleep',
      arguments: ['300'],
      requirements: { wallTimeSec: 2, sites: ['Wall.site'] },
    });
    const job = await waitStatus(id as number, ['Failed', 'Done']);
    assert.equal(job.status, 'Failed');
    assert.equal(job.minorStatus, 'Job has exceeded maximum wall clock time');
  });

  it('a job over its memory is killed by the watchdog: Failed / Job has exceeded its memory limit', async () => {
    await startPilot('Memory.site', ['--cores', '1', '--watchdog-interval-sec', '1', '--kill-grace-sec', '1']);
    const hog =
      'const held = []; for (let i = 0; i < 30; i += 1) held.push(Buffer.alloc(10 * 1024 * 1024, 1)); setInterval(() => held.length, 1000);';
    const [id] = await submit({
      executable: process.execPath,
      arguments: ['-e', hog],
      requirements: { memoryMB: 120, sites: ['Memory.site'] },
    });
    const job = await waitStatus(id as number, ['Failed', 'Done']);
    assert.equal(job.status, 'Failed');
    assert.equal(job.minorStatus, 'Job has exceeded its memory limit');
  });

  it('a job that makes no CPU progress is stopped as stalled', async () => {
    await startPilot('Stall.site', [
      '--cores',
      '1',
      '--watchdog-interval-sec',
      '1',
      '--stall-timeout-sec',
      '3',
      '--kill-grace-sec',
      '1',
    ]);
    const [id] = await submit({ executable: 'sleep', arguments: ['300'], requirements: { sites: ['Stall.site'] } });
    const job = await waitStatus(id as number, ['Failed', 'Done']);
    assert.equal(job.status, 'Failed');
    assert.equal(job.minorStatus, 'Watchdog identified this job as stalled');
  });

  it("a user's kill reaches the running job at once and its whole process tree is gone", async () => {
    const pilot = await startPilot('Kill.site', ['--cores', '1', '--kill-grace-sec', '2']);
    const dir = await scratch();
    // A tree: a background child, a grandchild in its own session (setsid), a foreground sleep.
    const script = `sleep 300 & echo $! > ${dir}/bg.pid; setsid sleep 300 & echo $! > ${dir}/session.pid; echo $$ > ${dir}/main.pid; sleep 300`;
    const [id] = await submit({
      executable: '/bin/sh',
      arguments: ['-c', script],
      requirements: { sites: ['Kill.site'] },
    });
    const pids = await waitFor(async () => {
      const files = ['bg.pid', 'session.pid', 'main.pid'].map((f) => path.join(dir, f));
      if (!files.every(existsSync)) return undefined;
      const values = await Promise.all(files.map(async (f) => Number((await readFile(f, 'utf8')).trim())));
      return values.every((pid) => pid > 0) ? values : undefined;
    }, 'the payload tree to start');
    for (const pid of pids) assert.equal(isAlive(pid), true, `process ${pid} runs before the kill`);
    const mark = pilot.log().length;

    const killed = await m.api('POST', `/api/jobs/${id}/kill`, { json: {} });
    assert.equal(killed.status, 200);
    assert.equal(killed.body.status, 'Killed');
    await waitLog(pilot, /"reason":"command","msg":"job kill requested"/, mark, 10_000);
    await waitFor(async () => pids.every((pid) => !isAlive(pid)), 'every process of the tree to be gone', 15_000);
    const job = await getJob(id as number);
    assert.equal(job.status, 'Killed', 'the kill stands: the pilot reports cannot move a Killed job');
    await waitFor(
      async () =>
        ((await getJob(id as number)).history as { minorStatus: string }[]).some(
          (h) => h.minorStatus === 'Received Kill signal',
        ),
      "the pilot's report of the kill in the history",
    );
  });

  it('a 4-core pilot runs four 1-core jobs side by side, and a 2-core job only once two cores are free', async () => {
    const pilot = await startPilot('Four.site', ['--cores', '4', '--log-level', 'debug']);
    const dir = await scratch();
    const names = ['a', 'b', 'c', 'd'];
    const ids = await submit(names.map((name) => ({ ...blocker(dir, name), requirements: { sites: ['Four.site'] } })));
    // All four started before any was released: they run concurrently.
    await waitFor(
      async () => names.every((name) => existsSync(path.join(dir, `${name}.start`))),
      'four jobs running at once',
    );
    // The pilot's one offer of its four free cores (parked before the submission) took all four jobs:
    // the matcher filled it at once (maxJobs), with no offer between the matches.
    const offers = pilot
      .log()
      .split('\n')
      .filter((line) => line.includes('"msg":"offer sent"'));
    assert.equal(offers.length, 1, offers.join('\n'));
    assert.match(offers[0] ?? '', /"resources":\{"cores":4,[^\n]*"maxJobs":4/);
    const matchSeqs = pilot
      .log()
      .split('\n')
      .filter((line) => line.includes('"msg":"job matched"'))
      .map((line) => Number(/"matchSeq":(\d+)/.exec(line)?.[1]));
    assert.deepEqual(matchSeqs, [1, 2, 3, 4]);
    // Running reaches the matcher within the pilot's report coalescing window (500 ms by default).
    await waitFor(
      async () => (await Promise.all(ids.map(getJob))).every((job) => job.status === 'Running'),
      'four jobs Running in the matcher',
    );

    // Heartbeats carry tree CPU/RSS, wall clock and disk; the pilot record gets the node's load.
    const usage = await waitFor(async () => {
      const { body } = await m.api('GET', `/api/jobs/${ids[0]}/usage`);
      return body.usage !== null && body.usage.wallSec > 0 ? body.usage : undefined;
    }, 'a heartbeat with usage');
    assert.ok(usage.rssMB > 0 && usage.peakRssMB >= usage.rssMB, JSON.stringify(usage));
    const record = (await m.api('GET', '/api/pilots/Four-site')).body;
    assert.equal(record.node.cores >= 1, true);
    assert.ok(record.lastHeartbeat !== null && record.lastHeartbeat.load1 >= 0, JSON.stringify(record.lastHeartbeat));

    const [wide] = await submit({ ...blocker(dir, 'wide'), requirements: { cores: { min: 2 }, sites: ['Four.site'] } });
    // One core free: the pilot offers it, the matcher parks the offer, the 2-core job stays Waiting.
    let mark = pilot.log().length;
    await release(dir, 'a');
    await waitStatus(ids[0] as number, ['Done']);
    const offer = await waitLog(
      pilot,
      /"offerId":"([^"]+)","matchSeq":\d+,"resources":\{"cores":1,[^\n]*"msg":"offer sent"/,
      mark,
    );
    await waitLog(pilot, new RegExp(`"offerId":"${offer[1]}","msg":"offer parked"`), mark);
    assert.equal((await getJob(wide as number)).status, 'Waiting');
    assert.equal(existsSync(path.join(dir, 'wide.start')), false);

    // Two cores free: the 2-core job runs, after the second 1-core job ended.
    mark = pilot.log().length;
    await release(dir, 'b');
    await waitFor(async () => existsSync(path.join(dir, 'wide.start')), 'the 2-core job to start');
    await waitFor(async () => (await getJob(wide as number)).status === 'Running', 'the 2-core job Running');
    assert.ok(
      (await stamp(dir, 'wide.start')) > (await stamp(dir, 'b.end')),
      'the 2-core job started after the second core was freed',
    );

    for (const name of ['c', 'd', 'wide']) await release(dir, name);
    for (const id of [...ids, wide as number]) assert.equal((await waitStatus(id, ['Done', 'Failed'])).status, 'Done');
    // The four 1-core jobs overlapped: every start came before every end.
    const starts = await Promise.all(names.map((name) => stamp(dir, `${name}.start`)));
    const ends = await Promise.all(names.map((name) => stamp(dir, `${name}.end`)));
    const lastStart = starts.reduce((a, b) => (a > b ? a : b));
    const firstEnd = ends.reduce((a, b) => (a < b ? a : b));
    assert.ok(lastStart < firstEnd, 'the four runs overlap in time');
  });

  it('GPUs: each job sees only the GPUs it was given, a job without GPUs sees none', async () => {
    await startPilot('Gpu.site', ['--cores', '4', '--gpus', '2']);
    const dir = await scratch();
    const gpuJob = (name: string) => ({
      ...blocker(dir, name, `echo "$CUDA_VISIBLE_DEVICES|$ROCR_VISIBLE_DEVICES" > ${dir}/${name}.gpus; `),
      requirements: { gpus: { min: 1 }, sites: ['Gpu.site'] },
    });
    const ids = await submit([
      gpuJob('g1'),
      gpuJob('g2'),
      {
        ...blocker(dir, 'cpu', `echo "$CUDA_VISIBLE_DEVICES|" > ${dir}/cpu.gpus; `),
        requirements: { sites: ['Gpu.site'] },
      },
    ]);
    await waitFor(
      async () => ['g1', 'g2', 'cpu'].every((name) => existsSync(path.join(dir, `${name}.start`))),
      'three jobs running',
    );
    const seen = await Promise.all(
      ['g1', 'g2', 'cpu'].map(async (name) => (await readFile(path.join(dir, `${name}.gpus`), 'utf8')).trim()),
    );
    assert.deepEqual([seen[0], seen[1]].sort(), ['0|0', '1|1'], 'two GPU jobs, one distinct GPU each');
    assert.equal(seen[2], '|', 'the CPU job sees no GPU');
    for (const name of ['g1', 'g2', 'cpu']) await release(dir, name);
    for (const id of ids) assert.equal((await waitStatus(id, ['Done', 'Failed'])).status, 'Done');
  });

  it('SIGTERM drains: no new work, the running job finishes, the pilot reports and exits 0', async () => {
    const pilot = await startPilot('Sigterm.site', ['--cores', '2', '--log-level', 'debug']);
    const dir = await scratch();
    const [running] = await submit({ ...blocker(dir, 'r'), requirements: { sites: ['Sigterm.site'] } });
    await waitFor(async () => existsSync(path.join(dir, 'r.start')), 'the job to run');
    const mark = pilot.log().length;
    pilot.child.kill('SIGTERM');
    // Its parked offer (the free core) is withdrawn before anything else is submitted.
    await waitLog(pilot, /"msg":"offer cancelled"/, mark);
    const [later] = await submit({ executable: 'true', requirements: { sites: ['Sigterm.site'] } });
    await release(dir, 'r');
    assert.equal(await pilot.exited, 0);
    assert.equal((await getJob(running as number)).status, 'Done');
    assert.equal((await getJob(later as number)).status, 'Waiting', 'a draining pilot takes no new job');
    const record = (await m.api('GET', '/api/pilots/Sigterm-site')).body;
    assert.equal(record.status, 'Done');
    assert.equal(record.exit.reason, 'drained');
    assert.equal(record.exit.jobsRun, 1);
    // Leave nothing behind for the other tests: the waiting job goes.
    await m.api('POST', `/api/jobs/${later}/kill`, { json: {} });
  });

  it('after a drain, a job that outlives the grace time is killed: Pilot drain grace time expired', async () => {
    const pilot = await startPilot('Grace.site', ['--cores', '1', '--drain-grace-sec', '1', '--kill-grace-sec', '1']);
    const [id] = await submit({ executable: 'sleep', arguments: ['300'], requirements: { sites: ['Grace.site'] } });
    await waitFor(async () => (await getJob(id as number)).minorStatus === 'Application', 'the payload to run');
    pilot.child.kill('SIGTERM');
    assert.equal(await pilot.exited, 0);
    const job = await getJob(id as number);
    assert.deepEqual([job.status, job.minorStatus], ['Failed', 'Pilot drain grace time expired']);
  });

  it('a drain file makes an idle pilot leave; a present drain file stops a pilot from starting', async () => {
    const dir = await scratch();
    const drainFile = path.join(dir, 'drain');
    const pilot = await startPilot('DrainFile.site', ['--drain-file', drainFile]);
    await waitFor(
      async () => (await m.api('GET', '/api/pilots/DrainFile-site')).status === 200,
      'the pilot to say hello',
    );
    await writeFile(drainFile, 'maintenance\n');
    assert.equal(await pilot.exited, 0);
    const record = (await m.api('GET', '/api/pilots/DrainFile-site')).body;
    assert.deepEqual([record.status, record.exit.reason], ['Done', 'drain-file']);

    const refused = await startPilot('DrainFile2.site', ['--drain-file', drainFile]);
    assert.equal(await refused.exited, 0);
    assert.match(refused.log(), /the node is being drained/);
    assert.equal((await m.api('GET', '/api/pilots/DrainFile2-site')).status, 404, 'it never connected');
  });

  it('pilothouse pilots drain: the pilot finishes its job, takes nothing more, and its log is retrievable', async () => {
    const pilot = await startPilot('DrainCmd.site', ['--cores', '2', '--log-level', 'debug']);
    const dir = await scratch();
    const [running] = await submit({ ...blocker(dir, 'x'), requirements: { sites: ['DrainCmd.site'] } });
    await waitFor(async () => existsSync(path.join(dir, 'x.start')), 'the job to run');
    const tokenFile = path.join(dir, 'admin.token');
    await writeFile(tokenFile, m.adminToken);
    const common = ['--matcher', m.url, '--token-file', tokenFile];
    const mark = pilot.log().length;
    const drained = await execFileAsync(process.execPath, [
      CLI,
      'pilots',
      'drain',
      'DrainCmd-site',
      '--reason',
      'kernel update',
      ...common,
    ]);
    assert.match(drained.stdout, /pilot DrainCmd-site is draining/);
    await waitLog(pilot, /"reason":"kernel update","msg":"drain requested by the matcher"/, mark);
    await waitLog(pilot, /"msg":"offer cancelled"/, mark);
    const [later] = await submit({ executable: 'true', requirements: { sites: ['DrainCmd.site'] } });
    await release(dir, 'x');
    assert.equal(await pilot.exited, 0);
    assert.equal((await getJob(running as number)).status, 'Done');
    assert.equal((await getJob(later as number)).status, 'Waiting');
    await m.api('POST', `/api/jobs/${later}/kill`, { json: {} });
    const record = (await m.api('GET', '/api/pilots/DrainCmd-site')).body;
    assert.equal(record.exit.reason, 'drain-command');
    assert.equal(record.drain.reason, 'kernel update');

    // The pilot's own log, shipped to the matcher: REST pages and the CLI.
    const { body } = await m.api('GET', '/api/pilots/DrainCmd-site/logs?limit=5000');
    const messages = body.lines.map((l: { line: string }) => JSON.parse(l.line).msg as string);
    for (const msg of [
      'pilot started',
      'connected',
      'job matched',
      'drain requested by the matcher',
      'pilot finished',
    ]) {
      assert.ok(messages.includes(msg), `shipped log holds "${msg}"`);
    }
    assert.deepEqual(
      body.lines.map((l: { seq: number }) => l.seq),
      body.lines.map((_: unknown, i: number) => i + 1),
      'every line once, in order',
    );
    const printed = await execFileAsync(process.execPath, [CLI, 'pilots', 'logs', 'DrainCmd-site', ...common]);
    assert.match(printed.stdout, /INFO  pilot started/);
    assert.match(printed.stdout, /INFO  pilot finished reason=drain-command jobsRun=1 jobsFailed=0/);
    assert.equal(printed.stdout.trim().split('\n').length, body.lines.length);
  });
});
