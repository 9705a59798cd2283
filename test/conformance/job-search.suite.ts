/**
 * Searching and summarising jobs, the same on every JobStore: each query's rows are compared with a
 * reference evaluation in this file (filters, NULL handling, byte order of text, NULLs sorting as the
 * largest value), read whole, page by page and by keyset, and each summary with counts made here.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { JobQuery, JobSelection, JobStore } from '../../matcher/store/job-store.ts';
import { completeSort } from '../../matcher/store/job-search-sql.ts';
import type { JobColumn, JobFilter, JobSortKey } from '../../shared/job/job-search.ts';
import type { JobView } from '../../shared/job/model.ts';
import { alice, bob, carol, newJob } from '../helpers/jobs.ts';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (seconds: number): string => new Date(T0 + seconds * 1000).toISOString();

type Value = string | number | null;

/** NULL is larger than any value; text compares by UTF-16 units, which is byte order for these ASCII values. */
function compareValues(a: Value, b: Value): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return a < b ? -1 : 1;
}

function likeToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i] as string;
    if (c === '\\' && i + 1 < pattern.length) source += (pattern[++i] as string).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '%') source += '.*';
    else if (c === '_') source += '.';
    else source += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'is');
}

function matches(job: JobView, filter: JobFilter): boolean {
  const value = (job as unknown as Record<JobColumn, Value>)[filter.column];
  switch (filter.operator) {
    case 'in':
      return value !== null && filter.values.includes(value);
    case 'not in':
      return value === null || !filter.values.includes(value);
    case 'like':
      return value !== null && likeToRegExp(String(filter.value)).test(String(value));
    case 'not like':
      return value === null || !likeToRegExp(String(filter.value)).test(String(value));
    case 'eq':
      return filter.value === null ? value === null : value === filter.value;
    case 'neq':
      return filter.value === null ? value !== null : value !== filter.value;
    default: {
      if (value === null || filter.value === null) return false;
      const order = compareValues(value, filter.value);
      return { gt: order > 0, gte: order >= 0, lt: order < 0, lte: order <= 0 }[filter.operator];
    }
  }
}

function reference(all: JobView[], query: { filters?: JobFilter[]; sort: JobSortKey[] }): number[] {
  const keys = completeSort(query.sort);
  return all
    .filter((job) => (query.filters ?? []).every((filter) => matches(job, filter)))
    .sort((a, b) => {
      for (const { column, direction } of keys) {
        const order = compareValues(
          (a as unknown as Record<JobColumn, Value>)[column],
          (b as unknown as Record<JobColumn, Value>)[column],
        );
        if (order !== 0) return direction === 'asc' ? order : -order;
      }
      return 0;
    })
    .map((job) => job.id);
}

/** A store filled with jobs that differ in every searched column, NULLs included. */
async function fill(store: JobStore): Promise<void> {
  const owners = [alice, bob, carol];
  const names = ['sim-%d', 'Reco_%d', 'calib%%%d', 'merge.%d'];
  for (let batch = 0; batch < 3; batch += 1) {
    const jobs = Array.from({ length: 12 }, (_, i) => {
      const n = batch * 12 + i;
      return newJob(owners[n % 3]!, {
        name: names[n % 4]!.replace('%%', '%').replace('%d', String(n)),
        priority: n % 5,
        jobType: n % 2 === 0 ? 'User' : 'MCSimulation',
        ...(n % 3 !== 2 && { jobGroup: n % 3 === 0 ? 'grp1' : 'Grp2' }),
      });
    });
    await store.submitJobs(jobs, at(batch * 60));
  }
  // Take some jobs to two sites, run some, finish some with exit codes.
  const page = await store.searchJobs({ sort: [{ column: 'id', direction: 'asc' }], page: 1, perPage: 100 });
  const taskQueues = [...new Set(page.jobs.map((job) => job.taskQueueId as number))];
  let claims = 0;
  for (const [index, taskQueueId] of taskQueues.entries()) {
    for (let k = 0; k < 2; k += 1) {
      const site = index % 2 === 0 ? 'Site.A' : 'Site.B';
      const claim = await store.claimFromTaskQueue(taskQueueId, {
        pilotId: `p${claims}`,
        site,
        ce: `ce.${site}`,
        at: at(200 + claims),
        jobType: 'User',
        maxRunning: null,
        matchingDelaySec: null,
      });
      if (!claim.job) continue;
      claims += 1;
      const id = claim.job.id;
      await store.reportStatus(id, 1, { status: 'Running', at: at(300 + claims), source: 'Pilot' });
      if (claims % 3 === 0) {
        await store.reportStatus(id, 1, { status: 'Done', exitCode: 0, at: at(400 + claims), source: 'Pilot' });
      } else if (claims % 3 === 1) {
        await store.reportStatus(id, 1, { status: 'Failed', exitCode: claims, at: at(400 + claims), source: 'Pilot' });
      }
    }
  }
}

const QUERIES: { title: string; filters?: JobFilter[]; sort: JobSortKey[] }[] = [
  { title: 'everything by id', sort: [{ column: 'id', direction: 'asc' }] },
  { title: 'everything newest first', sort: [{ column: 'id', direction: 'desc' }] },
  {
    title: 'site (NULLs last) then priority desc',
    sort: [
      { column: 'site', direction: 'asc' },
      { column: 'priority', direction: 'desc' },
    ],
  },
  { title: 'site desc (NULLs first)', sort: [{ column: 'site', direction: 'desc' }] },
  { title: 'name in byte order', sort: [{ column: 'name', direction: 'asc' }] },
  {
    title: 'job group, exit code desc',
    sort: [
      { column: 'jobGroup', direction: 'asc' },
      { column: 'exitCode', direction: 'desc' },
    ],
  },
  { title: 'neq keeps NULLs', filters: [{ column: 'site', operator: 'neq', value: 'Site.A' }], sort: [] },
  { title: 'eq null', filters: [{ column: 'site', operator: 'eq', value: null }], sort: [] },
  { title: 'neq null', filters: [{ column: 'exitCode', operator: 'neq', value: null }], sort: [] },
  {
    title: 'ranges on integers and times',
    filters: [
      { column: 'priority', operator: 'gte', value: 2 },
      { column: 'priority', operator: 'lt', value: 4 },
      { column: 'submittedAt', operator: 'gt', value: at(30) },
    ],
    sort: [{ column: 'submittedAt', direction: 'desc' }],
  },
  {
    title: 'in and not in',
    filters: [
      { column: 'status', operator: 'in', values: ['Done', 'Failed', 'Waiting'] },
      { column: 'jobGroup', operator: 'not in', values: ['grp1'] },
    ],
    sort: [{ column: 'status', direction: 'asc' }],
  },
  { title: 'like is case-insensitive', filters: [{ column: 'name', operator: 'like', value: 'reco%' }], sort: [] },
  { title: 'like with _', filters: [{ column: 'name', operator: 'like', value: 'sim-_' }], sort: [] },
  { title: 'like with an escaped %', filters: [{ column: 'name', operator: 'like', value: 'calib\\%1%' }], sort: [] },
  { title: 'not like keeps NULLs', filters: [{ column: 'jobGroup', operator: 'not like', value: 'g%1' }], sort: [] },
  {
    title: 'text range in byte order',
    filters: [{ column: 'name', operator: 'lt', value: 'a' }],
    sort: [{ column: 'name', direction: 'desc' }],
  },
  { title: 'empty in matches nothing', filters: [{ column: 'owner', operator: 'in', values: [] }], sort: [] },
];

export function jobSearchSuite(name: string, openStore: () => Promise<JobStore>): void {
  describe(`job search conformance: ${name}`, () => {
    let store: JobStore;
    let all: JobView[];
    before(async () => {
      store = await openStore();
      await fill(store);
      all = (await store.searchJobs({ sort: [], page: 1, perPage: 1000 })).jobs;
      assert.equal(all.length, 36);
      assert.ok(all.some((job) => job.site === null) && all.some((job) => job.exitCode !== null));
    });
    after(() => store.close());

    for (const query of QUERIES) {
      it(`${query.title}: whole, by page and by keyset`, async () => {
        const expected = reference(all, query);
        const selection: JobSelection = query.filters ? { filters: query.filters } : {};
        const whole = await store.searchJobs({ ...selection, sort: query.sort, page: 1, perPage: 1000 });
        assert.deepEqual(
          whole.jobs.map((job) => job.id),
          expected,
        );
        assert.equal(whole.total, expected.length);

        const byPage: number[] = [];
        for (let page = 1; page <= Math.ceil(expected.length / 5); page += 1) {
          const found = await store.searchJobs({ ...selection, sort: query.sort, page, perPage: 5 });
          byPage.push(...found.jobs.map((job) => job.id));
        }
        assert.deepEqual(byPage, expected, 'pages');

        const byKeyset: number[] = [];
        let after: JobQuery['after'];
        for (;;) {
          const found = await store.searchJobs({
            ...selection,
            sort: query.sort,
            page: 1,
            perPage: 4,
            countTotal: false,
            ...(after && { after }),
          });
          assert.equal(found.total, null, 'no count asked, none made');
          if (found.jobs.length === 0) break;
          byKeyset.push(...found.jobs.map((job) => job.id));
          const last = found.jobs.at(-1) as unknown as Record<string, Value>;
          after = completeSort(query.sort).map(({ column }) => last[column] ?? null);
          assert.ok(byKeyset.length <= expected.length, 'the keyset walk ends');
        }
        assert.deepEqual(byKeyset, expected, 'keyset');
      });
    }

    it('summaries count what a search finds, grouped by one or two columns', async () => {
      const groupings: JobColumn[][] = [['status'], ['site', 'status'], ['jobGroup'], ['owner', 'jobType']];
      for (const groupBy of groupings) {
        const filters: JobFilter[] = [{ column: 'priority', operator: 'lte', value: 3 }];
        const counted = await store.summarizeJobs({ filters }, groupBy);
        const expected = new Map<string, number>();
        for (const id of reference(all, { filters, sort: [] })) {
          const job = all.find((j) => j.id === id) as unknown as Record<string, Value>;
          const key = JSON.stringify(groupBy.map((column) => job[column] ?? null));
          expected.set(key, (expected.get(key) ?? 0) + 1);
        }
        const got = new Map(
          counted.map((group) => [JSON.stringify(groupBy.map((column) => group.values[column] ?? null)), group.count]),
        );
        assert.deepEqual(got, expected, groupBy.join(','));
        const counts = counted.map((group) => group.count);
        assert.deepEqual(
          counts,
          [...counts].sort((a, b) => b - a),
          'largest groups first',
        );
      }
    });

    it('a summary of an empty selection is empty, and the shortcut lists apply as in a search', async () => {
      assert.deepEqual(await store.summarizeJobs({ owners: [] }, ['status']), []);
      const carols = await store.summarizeJobs({ owners: ['carol'] }, ['owner']);
      assert.deepEqual(carols, [
        { values: { owner: 'carol' }, count: all.filter((job) => job.owner === 'carol').length },
      ]);
    });
  });
}
