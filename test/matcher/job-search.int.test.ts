/**
 * `POST /api/jobs/search` and `POST /api/jobs/summary` over HTTP on a real matcher: DiracX-shaped
 * bodies (DIRAC column names included), `?page=&per_page=` with 206/Content-Range and 416 past the
 * end, keyset cursors walked to the end, projections, what each caller may see, and a 400 with the
 * offending field for every malformed filter, operator, column, page, cursor and grouping.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';

let m: TestMatcher;
let alice: string;
let bob: string;
let aliceIds: number[];
let bobIds: number[];

before(async () => {
  m = await startTestMatcher();
  alice = await m.userToken('alice');
  bob = await m.userToken('bob');
  const submit = async (token: string, jobs: object[]) => {
    const answer = await m.api('POST', '/api/jobs', { token, json: jobs });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    return answer.body.jobIds as number[];
  };
  aliceIds = await submit(
    alice,
    Array.from({ length: 23 }, (_, n) => ({
      name: n % 2 === 0 ? `sim-${n}` : `Reco-${n}`,
      executable: '/bin/true',
      priority: n % 4,
      jobType: n < 10 ? 'MCSimulation' : 'User',
      ...(n % 3 === 0 && { jobGroup: 'campaign7' }),
    })),
  );
  bobIds = await submit(
    bob,
    Array.from({ length: 4 }, (_, n) => ({ name: `bob-${n}`, executable: '/bin/true' })),
  );
});
after(() => m.close());

const search = (json: object, token = alice, query = '') => m.api('POST', `/api/jobs/search${query}`, { token, json });

it('DiracX-shaped filters with DIRAC column names, sort on any column, and the columns asked for', async () => {
  const answer = await search({
    parameters: ['JobID', 'JobName', 'UserPriority', 'jobGroup'],
    search: [
      { parameter: 'JobType', operator: 'eq', value: 'MCSimulation' },
      { parameter: 'UserPriority', operator: 'in', values: [1, 3] },
      { parameter: 'JobName', operator: 'like', value: 'RECO%' },
    ],
    sort: [
      { parameter: 'UserPriority', direction: 'desc' },
      { parameter: 'JobID', direction: 'asc' },
    ],
  });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answer.headers.get('content-range'), null, 'one page holds it all: no Content-Range');
  // Odd n < 10 are Reco; priority n % 4 in {1, 3}: n = 1, 3, 5, 7, 9; priority 3 first (3, 7), then 1.
  const expected = [3, 7, 1, 5, 9].map((n) => aliceIds[n]);
  assert.deepEqual(
    answer.body.jobs.map((job: { id: number }) => job.id),
    expected,
  );
  assert.deepEqual(Object.keys(answer.body.jobs[0]).sort(), ['id', 'jobGroup', 'name', 'priority']);
  assert.equal(answer.body.total, 5);

  const grouped = await search({ search: [{ parameter: 'JobGroup', operator: 'eq', value: 'campaign7' }] });
  assert.equal(grouped.body.total, 8, 'n % 3 === 0 for n < 23');
  const noGroup = await search({ search: [{ parameter: 'jobGroup', operator: 'eq', value: null }], perPage: 1 });
  assert.equal(noGroup.body.total, 15, "alice's jobs without a group (bob's are not hers to see)");
  const recent = await search({ search: [{ parameter: 'SubmissionTime', operator: 'last hours', value: 1 }] });
  assert.equal(recent.body.total, 23, 'everything was submitted within the hour');
});

it('?page=&per_page= answer 206 with Content-Range, and 416 past the end', async () => {
  const page2 = await search({}, alice, '?page=2&per_page=5');
  assert.equal(page2.status, 206);
  assert.equal(page2.headers.get('content-range'), 'jobs 5-9/23');
  assert.deepEqual(
    page2.body.jobs.map((job: { id: number }) => job.id),
    aliceIds.slice(5, 10),
  );
  const last = await search({ page: 5, perPage: 5 });
  assert.equal(last.status, 206);
  assert.equal(last.headers.get('content-range'), 'jobs 20-22/23');
  assert.equal(last.body.nextCursor, undefined, 'the last page has no next');
  const past = await search({}, alice, '?page=6&per_page=5');
  assert.equal(past.status, 416);
  assert.equal(past.headers.get('content-range'), 'jobs */23');
  assert.equal(past.body.error.code, 'PAGE_OUT_OF_RANGE');
  const twice = await search({ page: 1 }, alice, '?page=2');
  assert.deepEqual([twice.status, twice.body.error.field], [400, 'page']);
});

it('a keyset cursor walks every job once, in order, whatever the sort; it only continues its own search', async () => {
  const sort = [
    { parameter: 'jobType', direction: 'asc' },
    { parameter: 'name', direction: 'desc' },
  ];
  const whole = await search({ sort, perPage: 100 });
  const seen: number[] = [];
  let answer = await search({ sort, perPage: 4 });
  const ranges: string[] = [];
  for (;;) {
    assert.equal(answer.status, 206, JSON.stringify(answer.body));
    ranges.push(answer.headers.get('content-range') as string);
    seen.push(...answer.body.jobs.map((job: { id: number }) => job.id));
    if (!answer.body.nextCursor) break;
    answer = await search({ sort, perPage: 4, cursor: answer.body.nextCursor });
  }
  assert.deepEqual(
    seen,
    whole.body.jobs.map((job: { id: number }) => job.id),
  );
  assert.deepEqual(ranges.slice(0, 2), ['jobs 0-3/23', 'jobs 4-7/23']);
  assert.equal(ranges.at(-1), 'jobs 20-22/23');

  const first = await search({ sort, perPage: 4 });
  const otherSort = await search({ perPage: 4, cursor: first.body.nextCursor });
  assert.deepEqual([otherSort.status, otherSort.body.error.field], [400, 'cursor']);
  const otherCaller = await search({ sort, perPage: 4, cursor: first.body.nextCursor }, bob);
  assert.deepEqual(
    [otherCaller.status, otherCaller.body.error.field],
    [400, 'cursor'],
    "bob cannot walk alice's search",
  );
  const garbage = await search({ cursor: 'not-a-cursor' });
  assert.deepEqual([garbage.status, garbage.body.error.code], [400, 'BAD_QUERY']);
  const both = await search({ page: 2, cursor: first.body.nextCursor });
  assert.deepEqual([both.status, both.body.error.field], [400, 'page']);
});

it('each caller sees only what the policy allows, and summaries count the same jobs', async () => {
  assert.equal((await search({}, bob)).body.total, 4);
  const bobAsksForAlice = await search({ search: [{ parameter: 'Owner', operator: 'eq', value: 'alice' }] }, bob);
  assert.equal(bobAsksForAlice.body.total, 0, 'a filter cannot widen what bob sees');

  const summary = await m.api('POST', '/api/jobs/summary', { json: { grouping: ['Owner', 'JobType'] } });
  assert.equal(summary.status, 200, JSON.stringify(summary.body));
  assert.deepEqual(summary.body.grouping, ['owner', 'jobType']);
  const counts = Object.fromEntries(
    summary.body.groups.map((g: { owner: string; jobType: string; count: number }) => [
      `${g.owner}/${g.jobType}`,
      g.count,
    ]),
  );
  assert.deepEqual(counts, { 'alice/MCSimulation': 10, 'alice/User': 13, 'bob/User': 4 });
  assert.equal(summary.body.total, 27);
  for (const [key, count] of Object.entries(counts)) {
    const [owner, jobType] = key.split('/');
    const found = await m.api('POST', '/api/jobs/search', { json: { owner, jobType, perPage: 1 } });
    assert.equal(found.body.total, count, `search agrees with the summary on ${key}`);
  }
  const bobs = await m.api('POST', '/api/jobs/summary', { token: bob, json: { grouping: ['status'] } });
  assert.deepEqual(bobs.body.groups, [{ status: 'Waiting', count: 4 }]);
  const filtered = await m.api('POST', '/api/jobs/summary', {
    json: { grouping: ['priority'], search: [{ parameter: 'owner', operator: 'eq', value: 'alice' }] },
  });
  assert.equal(
    filtered.body.groups.reduce((sum: number, g: { count: number }) => sum + g.count, 0),
    aliceIds.length,
  );
  assert.ok(bobIds.length === 4);
});

it('every malformed filter, operator, column, page, sort, projection and grouping is a 400 naming its field', async () => {
  const cases: [object, string][] = [
    [{ search: [{ parameter: 'colour', operator: 'eq', value: 'red' }] }, 'search.0.parameter'],
    [{ search: [{ parameter: 'site', operator: 'approx', value: 'x' }] }, 'search.0.operator'],
    [{ search: [{ parameter: 'priority', operator: 'like', value: '1%' }] }, 'search.0.operator'],
    [{ search: [{ parameter: 'status', operator: 'gt', value: 'Done' }] }, 'search.0.operator'],
    [{ search: [{ parameter: 'priority', operator: 'eq', value: 'high' }] }, 'search.0.value'],
    [{ search: [{ parameter: 'status', operator: 'eq', value: 'Sleeping' }] }, 'search.0.value'],
    [{ search: [{ parameter: 'status', operator: 'in', value: 'Done' }] }, 'search.0.values'],
    [{ search: [{ parameter: 'site', operator: 'eq', values: ['x'] }] }, 'search.0.values'],
    [{ search: [{ parameter: 'site', operator: 'eq' }] }, 'search.0.value'],
    [{ search: [{ parameter: 'owner', operator: 'eq', value: null }] }, 'search.0.value'],
    [{ search: [{ parameter: 'site', operator: 'gt', value: null }] }, 'search.0.value'],
    [{ search: [{ parameter: 'submittedAt', operator: 'gt', value: 'yesterday' }] }, 'search.0.value'],
    [{ search: [{ parameter: 'submittedAt', operator: 'last hours', value: -3 }] }, 'search.0.value'],
    [{ search: [{ parameter: 'name', operator: 'last hours', value: 3 }] }, 'search.0.operator'],
    [{ search: [{ parameter: 'id', operator: 'in', values: ['seven'] }] }, 'search.0.values.0'],
    [{ sort: [{ parameter: 'colour' }] }, 'sort.0.parameter'],
    [{ sort: [{ parameter: 'id', direction: 'up' }] }, 'sort.0.direction'],
    [{ parameters: ['id', 'secret'] }, 'parameters.1'],
    [{ page: 0 }, 'page'],
    [{ perPage: 100_000 }, 'perPage'],
  ];
  for (const [json, field] of cases) {
    const answer = await search(json);
    assert.deepEqual(
      [answer.status, answer.body.error?.code, answer.body.error?.field],
      [400, 'BAD_QUERY', field],
      JSON.stringify(json),
    );
  }
  for (const query of ['?page=0', '?per_page=abc', '?per_page=10001']) {
    const answer = await search({}, alice, query);
    assert.deepEqual([answer.status, answer.body.error?.code], [400, 'BAD_QUERY'], query);
  }
  const summaries: [object, string][] = [
    [{}, 'grouping'],
    [{ grouping: [] }, 'grouping'],
    [{ grouping: ['id'] }, 'grouping.0'],
    [{ grouping: ['submittedAt'] }, 'grouping.0'],
    [{ grouping: ['status', 'Status'] }, 'grouping'],
    [{ grouping: ['status'], sort: [] }, 'sort'],
  ];
  for (const [json, field] of summaries) {
    const answer = await m.api('POST', '/api/jobs/summary', { json });
    assert.deepEqual(
      [answer.status, answer.body.error?.code, answer.body.error?.field],
      [400, 'BAD_QUERY', field],
      JSON.stringify(json),
    );
  }
});
