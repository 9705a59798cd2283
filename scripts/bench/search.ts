/**
 * Search and summary benchmark: a matcher process (`dist/cli.mjs server`, SQLite) over a store of N
 * jobs (1,000,000 by default) shaped like a production VO's history: the LHCb-like waiting population,
 * then most jobs moved on to Done, Failed, Running or Killed at one of 60 sites, submissions spread
 * over 30 days. The statuses are set with one SQL UPDATE (not through the state machine) because only
 * their distribution matters here. Each query is timed over HTTP, as a client sees it; figures are
 * medians over `rounds` repetitions, side by side: page-numbered reads (count + OFFSET) against the
 * keyset cursor the same search hands out.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { populate, startServer } from './matching.ts';
import { SITES } from './population.ts';
import { fmt, median } from './stats.ts';

export interface SearchBenchOptions {
  jobs: number;
  rounds: number;
  progress(message: string): void;
}

const DAY_MS = 86_400_000;

/** Moves the waiting population on: statuses, sites, exit codes, and submission times over 30 days. */
function ageStore(file: string, jobs: number, nowMs: number): void {
  const db = new Database(file);
  db.function('site_of', (id: number) => SITES[id % SITES.length] ?? null);
  db.function('iso_at', (ms: number) => new Date(ms).toISOString());
  db.transaction(() => {
    db.prepare(
      `UPDATE jobs SET
         status = CASE WHEN id % 20 < 12 THEN 'Done' WHEN id % 20 < 14 THEN 'Failed' WHEN id % 20 < 15 THEN 'Running'
                       WHEN id % 20 < 16 THEN 'Killed' ELSE 'Waiting' END,
         site = CASE WHEN id % 20 < 16 AND id % 20 <> 15 THEN site_of(id) ELSE NULL END,
         exit_code = CASE WHEN id % 20 < 12 THEN 0 WHEN id % 20 < 14 THEN 1 + id % 7 ELSE NULL END,
         submitted_at = iso_at(@start + (id * @span) / @jobs),
         last_update_at = iso_at(@start + (id * @span) / @jobs + 3600000)`,
    ).run({ start: nowMs - 30 * DAY_MS, span: 30 * DAY_MS, jobs });
  })();
  db.pragma('optimize');
  db.close();
}

interface Probe {
  name: string;
  /** The search (or summary) body, and its route. */
  body: object;
  route?: 'search' | 'summary';
  query?: string;
}

export async function benchSearch(options: SearchBenchOptions): Promise<string> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-search-'));
  const file = path.join(dataDir, 'pilothouse.sqlite');
  try {
    options.progress(`populating ${options.jobs} jobs`);
    await populate(file, options.jobs, options.progress);
    ageStore(file, options.jobs, Date.now());
    options.progress('store aged; starting the matcher');
    const { child, url } = await startServer(dataDir);
    try {
      const token = (await readFile(path.join(dataDir, 'admin.token'), 'utf8')).trim();
      const call = async (probe: Probe) => {
        const response = await fetch(`${url}/api/jobs/${probe.route ?? 'search'}${probe.query ?? ''}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(probe.body),
        });
        const answer = (await response.json()) as Record<string, unknown>;
        if (response.status >= 300 && response.status !== 206) {
          throw new Error(`${probe.name}: ${response.status} ${JSON.stringify(answer).slice(0, 300)}`);
        }
        return answer;
      };
      const deepPage = Math.floor(options.jobs / 2 / 100);
      const deep = await call({
        name: 'cursor source',
        body: { sort: [{ parameter: 'id', direction: 'desc' }] },
        query: `?page=${deepPage}&per_page=100`,
      });
      const probes: Probe[] = [
        {
          name: 'first page, newest first (100 jobs + count)',
          body: { sort: [{ parameter: 'id', direction: 'desc' }] },
        },
        {
          name: `page ${deepPage} by number (count + OFFSET ${(deepPage - 1) * 100})`,
          body: { sort: [{ parameter: 'id', direction: 'desc' }] },
          query: `?page=${deepPage}&per_page=100`,
        },
        {
          name: `the page after it by cursor (no count, no OFFSET)`,
          body: { sort: [{ parameter: 'id', direction: 'desc' }], cursor: deep['nextCursor'] },
        },
        {
          name: 'status = Failed, first page',
          body: { search: [{ parameter: 'Status', operator: 'eq', value: 'Failed' }] },
        },
        {
          name: 'site + status in (Running, Failed), newest first',
          body: {
            search: [
              { parameter: 'site', operator: 'eq', value: SITES[7] },
              { parameter: 'status', operator: 'in', values: ['Running', 'Failed'] },
            ],
            sort: [{ parameter: 'id', direction: 'desc' }],
          },
        },
        {
          name: 'owner + submitted in the last 24 hours',
          body: {
            search: [
              { parameter: 'owner', operator: 'eq', value: 'lbprods' },
              { parameter: 'submittedAt', operator: 'last hours', value: 24 },
            ],
          },
        },
        {
          name: 'sorted on an unindexed column (name), first page',
          body: { sort: [{ parameter: 'name', direction: 'asc' }] },
        },
        { name: 'summary by status', route: 'summary', body: { grouping: ['status'] } },
        { name: 'summary by site and status', route: 'summary', body: { grouping: ['site', 'status'] } },
        {
          name: 'summary by status, last 24 hours',
          route: 'summary',
          body: { grouping: ['status'], search: [{ parameter: 'submittedAt', operator: 'last hours', value: 24 }] },
        },
      ];
      const rows: string[] = [];
      for (const probe of probes) {
        const times: number[] = [];
        for (let round = 0; round < options.rounds; round += 1) {
          const started = performance.now();
          await call(probe);
          times.push(performance.now() - started);
        }
        options.progress(`${probe.name}: median ${fmt(median(times), 1)} ms`);
        rows.push(`| ${probe.name} | ${fmt(median(times), 1)} ms | ${fmt(Math.max(...times), 1)} ms |`);
      }
      return [
        `${options.jobs.toLocaleString('en')} jobs in SQLite (60% Done, 10% Failed, 5% Running, 5% Killed, 20% Waiting; 60 sites; submitted over 30 days); each query over HTTP, ${options.rounds} rounds.`,
        '',
        '| query | median | max |',
        '| --- | --- | --- |',
        ...rows,
      ].join('\n');
    } finally {
      child.kill('SIGTERM');
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}
