/**
 * `pilothouse jobs` as a user runs it (dist/cli.mjs in child processes) against a real matcher:
 * filters from flags and --where expressions, sort, pages, --all through cursors, --summary counts
 * that match the store, a readable table, and exit code 2 with a message for a bad filter.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { runCli } from '../helpers/cli-process.ts';

let m: TestMatcher;
let work: string;
let asAlice: Record<string, string>;
let asAdmin: Record<string, string>;
let ids: number[];

before(async () => {
  m = await startTestMatcher();
  work = await mkdtemp(path.join(os.tmpdir(), 'ph-cli-jobs-'));
  const aliceToken = await m.userToken('alice');
  await writeFile(path.join(work, 'alice.token'), aliceToken);
  await writeFile(path.join(work, 'admin.token'), m.adminToken);
  asAlice = { PILOTHOUSE_MATCHER: m.url, PILOTHOUSE_TOKEN_FILE: path.join(work, 'alice.token') };
  asAdmin = { PILOTHOUSE_MATCHER: m.url, PILOTHOUSE_TOKEN_FILE: path.join(work, 'admin.token') };
  const jobs = Array.from({ length: 30 }, (_, n) => ({
    name: `${n % 3 === 0 ? 'sim' : 'reco'}-${n}`,
    executable: '/bin/true',
    priority: n % 5,
    ...(n < 12 && { jobGroup: 'campaign7' }),
  }));
  const answer = await m.api('POST', '/api/jobs', { token: aliceToken, json: jobs });
  assert.equal(answer.status, 201);
  ids = answer.body.jobIds;
  const bob = await m.userToken('bob');
  await m.api('POST', '/api/jobs', { token: bob, json: [{ name: 'bobs', executable: '/bin/true' }] });
  for (const id of ids.slice(0, 4)) await m.api('POST', `/api/jobs/${id}/kill`, { token: aliceToken });
});
after(async () => {
  await m.close();
  await rm(work, { recursive: true, force: true });
});

const jsonOf = async (args: string[], env = asAlice) => {
  const result = await runCli(args, env);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
};

it('filters from flags and --where, sorted by any column, one page at a time', async () => {
  const found = await jsonOf([
    'jobs',
    '--json',
    '--where',
    'priority>=3',
    '--name',
    'SIM%',
    '--status',
    'Waiting',
    '--sort',
    'priority:desc,id',
    '--columns',
    'id,priority,name',
  ]);
  // sim-n for n % 3 === 0, priority n % 5 >= 3, not among the four killed (n < 4).
  const expected = [...Array(30).keys()]
    .filter((n) => n % 3 === 0 && n % 5 >= 3 && n >= 4)
    .sort((a, b) => (b % 5) - (a % 5) || a - b)
    .map((n) => ({ id: ids[n], priority: n % 5, name: `sim-${n}` }));
  assert.deepEqual(found.jobs, expected);
  assert.equal(found.total, expected.length);

  const page = await jsonOf(['jobs', '--json', '--per-page', '7', '--page', '2', '--sort', 'id']);
  assert.deepEqual(
    page.jobs.map((job: { id: number }) => job.id),
    ids.slice(7, 14),
  );
  assert.equal(page.total, 30, "alice's own jobs only");
  const grouped = await jsonOf(['jobs', '--json', '--job-group', 'campaign7', '--where', 'status!=Killed']);
  assert.equal(grouped.total, 8);
});

it('--all reads every page through cursors; the table is readable', async () => {
  const all = await jsonOf(['jobs', '--all', '--per-page', '4', '--json', '--sort', 'name,id'], asAdmin);
  assert.equal(all.length, 31);
  const names = all.map((job: { name: string }) => job.name);
  assert.deepEqual(names, [...names].sort(), 'sorted by name');
  const table = await runCli(['jobs', '--where', 'id<=' + ids[2], '--sort', 'id'], asAlice);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trim().split('\n');
  assert.match(lines[0] as string, /^id\s+status\s+minorStatus\s+exitCode\s+site\s+owner\s+name$/);
  assert.match(lines[1] as string, new RegExp(`^${ids[0]}\\s+Killed\\s`));
  assert.equal(lines.at(-1), '3 of 3 job(s), page 1');
});

it('--summary --by counts what the store holds', async () => {
  const summary = await jsonOf(['jobs', '--summary', '--by', 'Status,Owner', '--json'], asAdmin);
  const counts = Object.fromEntries(
    summary.groups.map((g: { status: string; owner: string; count: number }) => [`${g.status}/${g.owner}`, g.count]),
  );
  const inStore = await m.matcher.store.summarizeJobs({}, ['status', 'owner']);
  assert.deepEqual(counts, Object.fromEntries(inStore.map((g) => [`${g.values.status}/${g.values.owner}`, g.count])));
  assert.deepEqual(counts, { 'Waiting/alice': 26, 'Killed/alice': 4, 'Waiting/bob': 1 });
  const text = await runCli(['jobs', '--summary', '--since', '1'], asAlice);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^status\s+count\n/);
  assert.match(text.stdout, /Waiting\s+26\n/);
  assert.match(text.stdout, /30 job\(s\)\n$/);
});

it('a bad filter, sort or page exits 2 with a message naming it', async () => {
  const cases: [string[], RegExp][] = [
    [['jobs', '--where', 'colour=red'], /unknown column 'colour'/],
    [['jobs', '--where', 'priority'], /no operator after the column/],
    [['jobs', '--where', 'priority>high'], /priority takes whole numbers/],
    [['jobs', '--status', 'Sleeping'], /not a status/],
    [['jobs', '--sort', 'id:up'], /the direction is asc or desc/],
    [['jobs', '--page', '99'], /past/],
    [['jobs', '--summary', '--by', 'id'], /cannot be used here/],
    [['jobs', '--since', 'yesterday'], /--since must be a positive number/],
  ];
  for (const [args, message] of cases) {
    const result = await runCli(args, asAlice);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message, args.join(' '));
  }
});
