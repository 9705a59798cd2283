/**
 * Submission benchmark: how long a matcher process (`dist/cli.mjs server`, SQLite) takes to store a
 * bulk submission, all or nothing: a parametric JDL of N jobs (expanded by the matcher) and the same
 * N jobs as a JSON array (as `pilothouse submit` sends descriptions it expanded itself). Each round
 * submits into the same store, so later rounds also show the cost of a growing database.
 * Figures: median and max wall time per submission, jobs stored per second, and the body size.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { formatByteSize } from '../../shared/byte-size.ts';
import { startServer } from './matching.ts';
import { fmt, median } from './stats.ts';

export interface SubmissionBenchOptions {
  jobs: number;
  rounds: number;
  progress(message: string): void;
}

export async function benchSubmission(options: SubmissionBenchOptions): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-bench-submit-'));
  const { child, url } = await startServer(path.join(dir, 'data'));
  try {
    const token = (await readFile(path.join(dir, 'data', 'admin.token'), 'utf8')).trim();
    // Jobs nobody can match (no pilot runs), with an argument of their own each.
    const jdl = `Executable = "/bin/echo"; Arguments = "event %s"; Parameters = ${options.jobs}; Site = "Nowhere.site";`;
    const json = JSON.stringify(
      Array.from({ length: options.jobs }, (_, n) => ({
        executable: '/bin/echo',
        arguments: ['event', String(n + 1)],
        requirements: { sites: ['Nowhere.site'] },
      })),
    );
    const kinds = [
      { name: 'parametric JDL (text/x-jdl)', body: jdl, contentType: 'text/x-jdl' },
      { name: 'JSON array (application/json)', body: json, contentType: 'application/json' },
    ];
    const rows: string[] = [];
    for (const kind of kinds) {
      const times: number[] = [];
      for (let round = 1; round <= options.rounds; round += 1) {
        const started = performance.now();
        const response = await fetch(`${url}/api/jobs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': kind.contentType },
          body: kind.body,
        });
        const answer = (await response.json()) as { jobIds?: number[] };
        if (response.status !== 201 || answer.jobIds?.length !== options.jobs) {
          throw new Error(`${kind.name}: ${response.status} ${JSON.stringify(answer).slice(0, 300)}`);
        }
        times.push(performance.now() - started);
        options.progress(`${kind.name}: round ${round}, ${fmt(times.at(-1)! / 1000, 2)} s`);
      }
      const mid = median(times);
      rows.push(
        `| ${kind.name} | ${formatByteSize(Buffer.byteLength(kind.body))} | ${fmt(mid / 1000, 2)} s | ${fmt(Math.max(...times) / 1000, 2)} s | ${fmt(options.jobs / (mid / 1000), 0)} |`,
      );
    }
    return [
      `${options.jobs.toLocaleString('en')} jobs per submission, ${options.rounds} rounds of each kind into one store`,
      `(it ends holding ${(2 * options.jobs * options.rounds).toLocaleString('en')} waiting jobs). Each submission is one transaction.`,
      '',
      '| submission | body | median | max | jobs/s (median) |',
      '| --- | --- | --- | --- | --- |',
      ...rows,
    ].join('\n');
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    await rm(dir, { recursive: true, force: true });
  }
}
