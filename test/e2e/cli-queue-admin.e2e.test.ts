/**
 * `pilothouse tq`, `pilothouse policy` and `pilothouse priority` as an administrator runs them:
 * dist/cli.mjs in child processes against a real matcher. Jobs wait for a site no pilot serves, so
 * the queues stay put while they are steered.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { runCli } from '../helpers/cli-process.ts';

describe('pilothouse tq / policy / priority', () => {
  let m: TestMatcher;
  let work: string;
  let admin: Record<string, string>;
  let jobIds: number[];
  let tq: number;

  before(async () => {
    m = await startTestMatcher();
    work = await mkdtemp(path.join(os.tmpdir(), 'ph-cli-tq-'));
    const tokenFile = path.join(work, 'admin.token');
    await writeFile(tokenFile, m.adminToken);
    admin = { PILOTHOUSE_MATCHER: m.url, PILOTHOUSE_TOKEN_FILE: tokenFile };
    const alice = await m.userToken('alice', 'vo-a');
    const submitted = await m.api('POST', '/api/jobs', {
      token: alice,
      json: [1, 2, 3].map((i) => ({ executable: 'true', name: `w${i}`, requirements: { sites: ['Nowhere'] } })),
    });
    jobIds = submitted.body.jobIds;
    tq = (await m.api('GET', `/api/jobs/${jobIds[0]}`)).body.taskQueueId;
  });
  after(() => m.close());

  it('--help works on every new command', async () => {
    for (const args of [
      ['tq'],
      ['tq', 'list'],
      ['tq', 'show'],
      ['tq', 'pause'],
      ['tq', 'resume'],
      ['tq', 'boost'],
      ['tq', 'kill'],
      ['tq', 'reschedule'],
      ['policy'],
      ['policy', 'show'],
      ['policy', 'set'],
      ['policy', 'history'],
      ['policy', 'share'],
      ['policy', 'rank'],
      ['policy', 'limit'],
      ['policy', 'delay'],
      ['priority'],
    ]) {
      const result = await runCli([...args, '--help']);
      assert.equal(result.code, 0, `pilothouse ${args.join(' ')} --help`);
      assert.match(result.stdout, /Usage:/);
    }
  });

  it('tq lists, pauses, shows why, boosts (negative too) and resumes; --json for scripts', async () => {
    const listed = await runCli(['tq'], admin);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`^${tq}\\s+active\\s+3\\s`, 'm'));

    const paused = await runCli(['tq', 'pause', String(tq), '--reason', 'bad calibration'], admin);
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, new RegExp(`task queue ${tq} paused; 3 waiting job`));
    const onlyPaused = JSON.parse((await runCli(['tq', 'list', '--paused', '--json'], admin)).stdout);
    assert.deepEqual(
      onlyPaused.taskQueues.map((row: { id: number }) => row.id),
      [tq],
    );
    const shown = await runCli(['tq', 'show', String(tq)], admin);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /state: paused by admin .*: bad calibration/);
    assert.match(shown.stdout, /why nothing takes it:/);

    const boosted = JSON.parse((await runCli(['tq', 'boost', String(tq), '-20', '--json'], admin)).stdout);
    assert.equal(boosted.taskQueue.boost, -20);
    const byOwner = await runCli(['tq', 'boost', '--owner', 'alice', '--vo', 'vo-a', '7'], admin);
    assert.equal(byOwner.code, 0, byOwner.stderr);
    assert.match(byOwner.stdout, new RegExp(`boosted to 7: ${tq}`));

    const resumed = await runCli(['tq', 'resume', String(tq)], admin);
    assert.equal(resumed.code, 0, resumed.stderr);
    const job = (await m.api('GET', `/api/jobs/${jobIds[0]}`)).body;
    assert.deepEqual(
      job.history.filter((row: { note?: string }) => row.note).map((row: { note: string }) => row.note),
      [
        `task queue ${tq} paused: bad calibration`,
        `task queue ${tq} boost 0 → -20`,
        `task queue ${tq} boost -20 → 7`,
        `task queue ${tq} resumed`,
      ],
    );
  });

  it('priority by ids and by --where; tq kill ends every job with a count', async () => {
    const byId = await runCli(['priority', '8', String(jobIds[0])], admin);
    assert.equal(byId.code, 0, byId.stderr);
    assert.match(byId.stdout, /priority 8: 1 job\(s\) changed/);
    const byWhere = JSON.parse((await runCli(['priority', '8', '--where', 'owner=alice', '--json'], admin)).stdout);
    assert.deepEqual([byWhere.changed, byWhere.unchanged], [2, 1]);

    const killed = JSON.parse((await runCli(['tq', 'kill', String(tq), '--json'], admin)).stdout);
    assert.deepEqual([killed.selected, killed.changed, killed.unchanged], [3, 3, 0]);
    for (const id of jobIds) assert.equal((await m.api('GET', `/api/jobs/${id}`)).body.status, 'Killed');
  });

  it('policy set from a file, with --if-version; entry commands; history names each change', async () => {
    const shown = JSON.parse((await runCli(['policy', 'show', '--json'], admin)).stdout);
    const file = path.join(work, 'policy.json');
    await writeFile(file, JSON.stringify({ groups: { 'vo-a_prod': { share: 2000 } } }));
    const set = await runCli(['policy', 'set', file, '--if-version', String(shown.version)], admin);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, new RegExp(`version ${shown.version + 1} stored by admin`));
    const stale = await runCli(['policy', 'set', file, '--if-version', String(shown.version)], admin);
    assert.equal(stale.code, 1);
    assert.match(stale.stderr, /POLICY_CONFLICT/);

    assert.equal((await runCli(['policy', 'limit', 'Site.X', '*', '5'], admin)).code, 0);
    assert.equal((await runCli(['policy', 'rank', 'Sweep', '-3'], admin)).code, 0);
    assert.equal((await runCli(['policy', 'limit', 'Site.X', '*', '--remove'], admin)).code, 0);
    const history = await runCli(['policy', 'history', '--limit', '4'], admin);
    assert.equal(history.code, 0, history.stderr);
    for (const line of [
      /runningLimits\[Site\.X, \*\]\.maxRunning\s+5\s+\(none\)/,
      /jobTypeRanks\.Sweep\s+\(none\)\s+-3/,
      /runningLimits\[Site\.X, \*\]\.maxRunning\s+\(none\)\s+5/,
      /groups\.vo-a_prod\.share\s+\(none\)\s+2000/,
    ]) {
      assert.match(history.stdout, line);
    }
  });

  it('bad input is a usage error (2) naming what is wrong; a user who is not an administrator gets 3; an unknown TQ 4', async () => {
    const invalid = path.join(work, 'invalid.json');
    await writeFile(invalid, JSON.stringify({ groups: { g: { share: 0 } } }));
    const refused = await runCli(['policy', 'set', invalid], admin);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /groups\.g\.share/);
    const notJson = path.join(work, 'not.json');
    await writeFile(notJson, 'groups: {}');
    assert.equal((await runCli(['policy', 'set', notJson], admin)).code, 2);
    assert.equal((await runCli(['tq', 'boost', String(tq), '5000'], admin)).code, 2);
    assert.equal((await runCli(['tq', 'boost', '5'], admin)).code, 2, 'neither id nor --owner');
    assert.equal((await runCli(['tq', 'pause', String(tq)], admin)).code, 2, '--reason is required');
    assert.equal((await runCli(['priority', '11', '1'], admin)).code, 2);
    assert.equal((await runCli(['priority', '3'], admin)).code, 2, 'ids or --where');
    assert.equal((await runCli(['tq', 'show', '99999'], admin)).code, 4);

    const userFile = path.join(work, 'user.token');
    await writeFile(userFile, await m.userToken('bob', 'vo-a'));
    const asUser = { PILOTHOUSE_MATCHER: m.url, PILOTHOUSE_TOKEN_FILE: userFile };
    for (const args of [['tq'], ['tq', 'pause', String(tq), '--reason', 'x'], ['policy', 'limit', 'S', '*', '1']]) {
      const result = await runCli(args, asUser);
      assert.equal(result.code, 3, `pilothouse ${args.join(' ')} as a normal user`);
      assert.match(result.stderr, /FORBIDDEN/);
    }
  });
});
