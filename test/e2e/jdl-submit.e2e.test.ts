/**
 * DIRAC JDL files submitted with the real `pilothouse submit` and run by a real pilot: the corpus
 * files that need nothing of a DIRAC installation run to Done, with their local input files packed,
 * uploaded once and unpacked beside the payload, and their named standard streams in the output.
 * The corpus files that do need DIRAC are refused with a clear message (a missing input file; grid
 * storage). `%j` becomes the job id. Also: 1,000 JSON jobs sharing a local file make one upload, and
 * a second submission of the same files none.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { runCli } from '../helpers/cli-process.ts';
import { waitFor } from '../helpers/wait.ts';

let m: TestMatcher;
let work: string;
let env: Record<string, string>;
let pilot: PilotProcess;

before(async () => {
  m = await startTestMatcher();
  work = await mkdtemp(path.join(os.tmpdir(), 'ph-jdl-'));
  await cp(fileURLToPath(new URL('../fixtures/jdl/', import.meta.url)), work, { recursive: true });
  const tokenFile = path.join(work, 'admin.token');
  await writeFile(tokenFile, m.adminToken);
  env = { PILOTHOUSE_MATCHER: m.url, PILOTHOUSE_TOKEN_FILE: tokenFile };
  pilot = await spawnPilot({
    matcherUrl: m.url,
    token: await m.pilotToken('local'),
    args: ['--idle-timeout-sec', '600', '--cores', '2'],
  });
});
after(async () => {
  await pilot.stop();
  await m.close();
});

async function submit(file: string): Promise<{ jobIds: number[]; sandboxesUploaded: number; stderr: string }> {
  const result = await runCli(['submit', path.join(work, file), '--json'], env);
  assert.equal(result.code, 0, `${file}: ${result.stderr}`);
  return { ...JSON.parse(result.stdout), stderr: result.stderr };
}

async function doneWithOutput(id: number): Promise<string> {
  const job = await waitFor(
    async () => {
      const now = (await m.api('GET', `/api/jobs/${id}`)).body;
      return ['Done', 'Failed'].includes(now.status) ? now : undefined;
    },
    `job ${id} final`,
    120_000,
  );
  assert.equal(job.status, 'Done', `job ${id}: ${job.status} ${job.minorStatus}`);
  const dir = path.join(work, `out-${id}`);
  const output = await runCli(['output', String(id), '--dir', dir], env);
  assert.equal(output.code, 0, output.stderr);
  return dir;
}

it('corpus - simple.jdl runs /bin/ls -ltr; its output comes back as StdOut and StdErr', async () => {
  const { jobIds } = await submit('simple.jdl');
  const dir = await doneWithOutput(jobIds[0]!);
  assert.match(await readFile(path.join(dir, 'StdOut'), 'utf8'), /total \d+/);
  assert.equal(await readFile(path.join(dir, 'StdErr'), 'utf8'), '');
});

it('corpus - input-and-output-sandbox.jdl and lfn-input-data.jdl ship testJob.sh once and run it', async () => {
  const first = await submit('input-and-output-sandbox.jdl');
  assert.equal(first.sandboxesUploaded, 1);
  const again = await submit('lfn-input-data.jdl');
  assert.equal(again.sandboxesUploaded, 0, 'the same testJob.sh is already there');
  assert.match(again.stderr, /OutputSE has no effect/);
  for (const id of [...first.jobIds, ...again.jobIds]) {
    const dir = await doneWithOutput(id);
    assert.match(await readFile(path.join(dir, 'StdOut'), 'utf8'), new RegExp(os.hostname()));
  }
});

it('corpus - parametric-list.jdl: five jobs, each with its own argument and output names', async () => {
  const { jobIds } = await submit('parametric-list.jdl');
  assert.equal(jobIds.length, 5);
  const dir = await doneWithOutput(jobIds[3]!);
  assert.match(await readFile(path.join(dir, 'StdOut_fourth'), 'utf8'), new RegExp(os.hostname()));
  for (const id of jobIds) await doneWithOutput(id);
  // All five at once, each into its own directory; a job that does not exist is reported, not fatal.
  const all = path.join(work, 'all-five');
  const output = await runCli(['output', ...jobIds.map(String), '999999', '--dir', all, '--json'], env);
  assert.equal(output.code, 4, output.stderr);
  assert.match(output.stderr, /1 of 6 job\(s\) gave no output/);
  const results = JSON.parse(output.stdout) as { jobId: string; files?: string[]; error?: { code: string } }[];
  assert.deepEqual(
    results.map((r) => r.error?.code ?? r.files?.length),
    [...jobIds.map(() => 2), 'JOB_NOT_FOUND'],
  );
  const names = ['first', 'second', 'third', 'fourth', 'fifth'];
  for (const [n, id] of jobIds.entries()) {
    const out = await readFile(path.join(all, `job-${id}`, `StdOut_${names[n]}`), 'utf8');
    assert.match(out, new RegExp(os.hostname()));
  }
});

it('corpus - copy-file.jdl copies the shipped my.file into my.copy, returned in the output', async () => {
  const { jobIds } = await submit('copy-file.jdl');
  const dir = await doneWithOutput(jobIds[0]!);
  assert.equal(await readFile(path.join(dir, 'my.copy'), 'utf8'), await readFile(path.join(work, 'my.file'), 'utf8'));
});

it('examples/parametric.jdl (the README example) - five greetings, greet.sh uploaded once', async () => {
  await cp(fileURLToPath(new URL('../../examples/', import.meta.url)), path.join(work, 'examples'), {
    recursive: true,
  });
  const { jobIds, sandboxesUploaded } = await submit('examples/parametric.jdl');
  assert.deepEqual([jobIds.length, sandboxesUploaded], [5, 1]);
  const dir = await doneWithOutput(jobIds[4]!);
  assert.match(
    await readFile(path.join(dir, 'greeting_Radia.txt'), 'utf8'),
    new RegExp(`^Hello, Radia, from .* \\(job ${jobIds[4]}\\)`),
  );
});

it('%j - the job id is put into arguments and file names by the pilot', async () => {
  await writeFile(
    path.join(work, 'job-id.jdl'),
    'Executable = "/bin/echo"; Arguments = "job %j"; StdOutput = "out_%j.txt"; OutputSandbox = {"out_%j.txt"};',
  );
  const { jobIds } = await submit('job-id.jdl');
  const id = jobIds[0]!;
  const dir = await doneWithOutput(id);
  assert.equal(await readFile(path.join(dir, `out_${id}.txt`), 'utf8'), `job ${id}\n`);
});

it('corpus - files that need DIRAC, and a JDL that expands beyond reason, are refused before anything is sent', async () => {
  const typo = await runCli(['submit', path.join(work, 'parametric-count.jdl')], env);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /input file testParametericJob\.sh does not exist/);
  const lfn = await runCli(['submit', path.join(work, 'lfn-input-sandbox.jdl')], env);
  assert.equal(lfn.code, 2);
  assert.match(lfn.stderr, /lfn-input-sandbox\.jdl:5:9: InputSandbox names LFN:/);
  await writeFile(path.join(work, 'huge.jdl'), 'Executable = "/bin/true"; Parameters = 1000000000;');
  const huge = await runCli(['submit', path.join(work, 'huge.jdl')], env);
  assert.equal(huge.code, 2, 'refused before anything is expanded');
  assert.match(huge.stderr, /expands to 1000000000 jobs/);
});

it('1,000 JSON jobs sharing a local input file: one upload, one all-or-nothing request', async () => {
  await writeFile(path.join(work, 'shared.txt'), 'shared input\n');
  const jobs = Array.from({ length: 1000 }, (_, n) => ({
    name: `shared-${n}`,
    executable: '/bin/cat',
    arguments: ['shared.txt'],
    inputSandbox: ['shared.txt'],
    // Nobody offers this site: the jobs wait, the pilot stays free for the other cases.
    requirements: { sites: ['Nowhere.site'] },
  }));
  await writeFile(path.join(work, 'many.json'), JSON.stringify(jobs));
  const first = await submit('many.json');
  assert.deepEqual([first.jobIds.length, first.sandboxesUploaded], [1000, 1]);
  const second = await submit('many.json');
  assert.equal(second.sandboxesUploaded, 0);
  const job = (await m.api('GET', `/api/jobs/${first.jobIds[999]}`)).body;
  assert.equal(job.description.inputSandbox.length, 1);
});
