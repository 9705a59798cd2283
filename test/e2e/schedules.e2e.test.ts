/**
 * Recurring jobs end to end: a matcher process (`dist/cli.mjs server`, SQLite) and a real pilot; a
 * schedule made with `pilothouse schedule add` fires every 3 s and its runs end Done. The matcher is
 * then SIGKILLed and restarted on the same data directory and port 7 s later, so that at least two
 * slots pass while no matcher runs (and are older than the 1 s window at restart). With catch-up
 * `one`, exactly one run stands for them; no slot is doubled, none is lost, and the schedule goes on.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CronPlan } from '../../matcher/schedules/cron-plan.ts';
import { runCli } from '../helpers/cli-process.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { freePort } from '../helpers/ports.ts';
import { restCall } from '../helpers/rest.ts';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { waitFor } from '../helpers/wait.ts';

const CRON = '*/3 * * * * *';
const DOWNTIME_MS = 7_000;
const SERVER_ARGS = ['--schedule-min-interval-sec', '1', '--schedule-window-sec', '1'];

let dir: string;
let dataDir: string;
let listen: string;
let server: ServerProcess;
let token: string;
let pilot: PilotProcess;

interface Run {
  slotAt: string;
  outcome: string;
  missedSlots: number;
  jobs: { id: number; status: string }[];
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ph-schedules-e2e-'));
  dataDir = path.join(dir, 'data');
  listen = `127.0.0.1:${await freePort()}`;
  server = await startServerProcess({ dataDir, listen, args: SERVER_ARGS });
  token = (await readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();
  const pilotToken = (
    await runCli(['token', 'issue', '--data-dir', dataDir, '--kind', 'pilot', '--vo', 'local'])
  ).stdout.trim();
  pilot = await spawnPilot({
    matcherUrl: server.url,
    token: pilotToken,
    args: ['--cores', '2', '--idle-timeout-sec', '600', '--drain-file', 'none', '--isolation', 'none'],
  });
});

after(async () => {
  await pilot?.stop();
  if (server?.child.exitCode === null) server.child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

const runsOf = async (id: number): Promise<Run[]> =>
  (await restCall(server.url, token, 'GET', `/api/schedules/${id}/runs?limit=1000`)).runs as Run[];
const doneRuns = (runs: Run[]): number =>
  runs.filter((run) => run.outcome === 'submitted' && run.jobs.every((job) => job.status === 'Done')).length;

it(
  'a schedule every 3 s: runs end Done; a matcher SIGKILLed across two slots neither loses them (catch-up one) nor doubles any',
  { timeout: 120_000 },
  async () => {
    const jobFile = path.join(dir, 'tick.json');
    await writeFile(jobFile, JSON.stringify({ name: 'tick', executable: '/bin/echo', arguments: ['tick'] }));
    const env = { PILOTHOUSE_TOKEN: token };
    const added = await runCli(
      [
        'schedule',
        'add',
        jobFile,
        '--cron',
        CRON,
        '--catch-up',
        'one',
        '--overlap',
        'allow',
        '--matcher',
        server.url,
        '--json',
      ],
      env,
    );
    assert.equal(added.code, 0, added.stderr);
    const schedule = JSON.parse(added.stdout) as { id: number; nextFireTimes: string[] };
    assert.equal(schedule.nextFireTimes.length, 5);
    const shown = await runCli(['schedule', 'show', String(schedule.id), '--matcher', server.url], env);
    assert.match(shown.stdout, /next fire times:\n {2}\d{4}-/);

    await waitFor(async () => doneRuns(await runsOf(schedule.id)) >= 3 || undefined, 'three runs Done', 30_000);

    // Killed right after a slot fired, so that the kill itself cannot cut a firing short.
    const before = (await runsOf(schedule.id)).length;
    await waitFor(async () => (await runsOf(schedule.id)).length > before || undefined, 'a fresh slot', 10_000);
    const killedAt = Date.now();
    server.child.kill('SIGKILL');
    await new Promise((resolve) => server.child.once('exit', resolve));
    await new Promise((resolve) => setTimeout(resolve, DOWNTIME_MS - (Date.now() - killedAt))); // the downtime itself
    server = await startServerProcess({ dataDir, listen, args: SERVER_ARGS });
    const restartedAt = Date.now();

    await waitFor(
      async () => {
        const runs = await runsOf(schedule.id);
        return runs.some((run) => Date.parse(run.slotAt) > restartedAt) && doneRuns(runs) === runs.length
          ? true
          : undefined;
      },
      'a run after the restart, every run Done',
      60_000,
    );
    const runs = (await runsOf(schedule.id)).reverse(); // oldest first
    assert.ok(
      runs.every((run) => run.outcome === 'submitted'),
      JSON.stringify(runs),
    );
    const slots = runs.map((run) => run.slotAt);
    assert.equal(new Set(slots).size, slots.length, 'no slot decided twice');
    const catchUps = runs.filter((run) => run.missedSlots > 0);
    assert.equal(catchUps.length, 1, `one run stands for the slots of the downtime: ${JSON.stringify(runs)}`);
    assert.ok((catchUps[0] as Run).missedSlots >= 1);

    // Every slot from the first to the last is accounted for: a run of its own, or covered by the catch-up run.
    const plan = CronPlan.compile({ cron: CRON, timeZone: 'UTC' });
    const first = Date.parse(slots[0] as string);
    const last = Date.parse(slots.at(-1) as string);
    const expected = 1 + (plan.slotsBetween(first, last, 10_000)?.count ?? 0);
    const accounted = runs.reduce((sum, run) => sum + 1 + run.missedSlots, 0);
    assert.equal(accounted, expected, 'no slot lost, none counted twice');

    // One Done job per run, each naming its schedule and slot.
    const search = await restCall(server.url, token, 'POST', '/api/jobs/search', { perPage: 1000 });
    const jobs = (search.jobs as { scheduleId?: number; scheduleSlot?: string; status: string }[]).filter(
      (job) => job.scheduleId === schedule.id,
    );
    // A slot may fire between the two reads: its job is newer than the runs read above, and left out.
    const ofRunsRead = jobs.filter((job) => Date.parse(job.scheduleSlot as string) <= last);
    assert.deepEqual(ofRunsRead.map((job) => job.scheduleSlot).sort(), [...slots].sort());
    assert.ok(ofRunsRead.every((job) => job.status === 'Done'));
  },
);
