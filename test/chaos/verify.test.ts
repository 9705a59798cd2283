/** The chaos verdict catches what it is there to catch: each broken case alone is reported. */
import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import type { JobHistoryEntry, JobView } from '../../shared/job/model.ts';
import { verifyJobs, type FinalJob } from './verify.ts';

async function outputSaying(text: string): Promise<Buffer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-verify-'));
  await writeFile(path.join(dir, 'attempt.txt'), `${text}\n`);
  await tar.c({ gzip: true, cwd: dir, file: path.join(dir, 'out.tar.gz') }, ['attempt.txt']);
  const archive = await readFile(path.join(dir, 'out.tar.gz'));
  await rm(dir, { recursive: true, force: true });
  return archive;
}

const entry = (attempt: number, status: JobHistoryEntry['status'], applied = true): JobHistoryEntry => ({
  at: '2026-12-06T00:00:00.000Z',
  attempt,
  status,
  minorStatus: '',
  applicationStatus: '',
  source: 'test',
  applied,
});

async function finalJob(overrides: Partial<FinalJob> & { attempt?: number; status?: JobView['status'] } = {}) {
  const attempt = overrides.attempt ?? 2;
  const job = { id: 7, attempt, status: overrides.status ?? 'Done', minorStatus: '' } as JobView;
  const history = overrides.history ?? [
    entry(1, 'Running'),
    entry(1, 'Rescheduled'),
    entry(2, 'Running'),
    entry(2, 'Done'),
  ];
  return {
    job,
    history,
    output: overrides.output === undefined ? await outputSaying(`7 ${attempt}`) : overrides.output,
  };
}

const markerDirs: string[] = [];
after(() => Promise.all(markerDirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function markers(names: string[]): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-markers-'));
  markerDirs.push(dir);
  for (const name of names) await writeFile(path.join(dir, name), 'pilot\n');
  return dir;
}

const complete = ['7.1.start', '7.1.end', '7.2.start', '7.2.end'];

it('verify - a job Done once in its final attempt, with that attempt output, passes and counts the stale completion', async () => {
  const verdict = await verifyJobs([await finalJob()], await markers(complete));
  assert.deepEqual(verdict, { violations: [], retried: 1, staleCompletions: 1 });
});

it('verify - each broken case is reported', async () => {
  const cases: [string, FinalJob, string[]][] = [
    ['not Done', await finalJob({ status: 'Failed' }), complete],
    [
      'Done twice',
      await finalJob({ history: [entry(1, 'Done'), entry(1, 'Rescheduled'), entry(2, 'Done')] }),
      complete,
    ],
    [
      'Done in an earlier attempt only',
      await finalJob({ history: [entry(1, 'Done'), entry(2, 'Done', false)] }),
      complete,
    ],
    ["an earlier attempt's output", await finalJob({ output: await outputSaying('7 1') }), complete],
    ['no output', await finalJob({ output: null }), complete],
    ['final payload never ended', await finalJob(), ['7.1.start', '7.2.start']],
    ['a payload beyond the final attempt', await finalJob(), [...complete, '7.3.start']],
  ];
  for (const [what, job, names] of cases) {
    const verdict = await verifyJobs([job], await markers(names));
    assert.equal(verdict.violations.length, 1, `${what}: ${JSON.stringify(verdict.violations)}`);
  }
});
