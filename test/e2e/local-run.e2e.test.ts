/**
 * `pilothouse run` with no server anywhere (no matcher URL, no token): the real binary runs a JDL job
 * with local input files through the pilot's job runner, prints its statuses, leaves the output
 * sandbox in the directory it names and exits with the payload's exit code; limits apply as on a
 * pilot; bad input exits 2 before anything runs.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli-process.ts';

let work: string;
before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ph-run-'));
  await writeFile(
    path.join(work, 'script.sh'),
    '#!/bin/sh\necho "hello $1"\ncat data.txt\necho out > result.txt\nexit 7\n',
  );
  await writeFile(path.join(work, 'data.txt'), 'payload-data\n');
});
after(() => rm(work, { recursive: true, force: true }));

it("runs a JDL job with its input files and exits with the payload's code, outputs in the named directory", async () => {
  await writeFile(
    path.join(work, 'job.jdl'),
    [
      'Executable = "script.sh";',
      'Arguments = "world";',
      'InputSandbox = {"script.sh", "data.txt"};',
      'OutputSandbox = {"result.txt"};',
    ].join('\n'),
  );
  const out = path.join(work, 'out');
  const result = await runCli(['run', path.join(work, 'job.jdl'), '--dir', out]);
  assert.equal(result.code, 7, result.stderr);
  assert.match(result.stdout, /Running - Application/);
  assert.match(result.stdout, /Failed: Application Finished With Errors \(exit code 7\)/);
  assert.deepEqual((await readdir(out)).sort(), ['result.txt', 'std.err', 'std.out']);
  assert.equal(await readFile(path.join(out, 'std.out'), 'utf8'), 'hello world\npayload-data\n');
  assert.equal(await readFile(path.join(out, 'result.txt'), 'utf8'), 'out\n');
});

it('one job of a parametric JDL, with --json lines; a finished payload exits 0', async () => {
  await writeFile(
    path.join(work, 'param.jdl'),
    'Executable = "/bin/echo"; Arguments = "event %s of %n"; Parameters = {"a", "b", "c"};',
  );
  const out = path.join(work, 'param-out');
  const result = await runCli(['run', path.join(work, 'param.jdl'), '--index', '2', '--dir', out, '--json']);
  assert.equal(result.code, 0, result.stderr);
  const events = result.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  assert.ok(events.some((e) => e.event === 'status' && e.status === 'Running'));
  const end = events.at(-1);
  assert.deepEqual([end.event, end.status, end.exitCode], ['end', 'Done', 0]);
  assert.equal(await readFile(path.join(out, 'std.out'), 'utf8'), 'event c of 2\n');
});

it('the wall-time limit stops a payload as on a pilot', async () => {
  await writeFile(
    path.join(work, 'slow.json'),
    JSON.stringify({ executable: 'sleep', arguments: ['60'], requirements: { wallTimeSec: 1 } }),
  );
  const started = Date.now();
  const result = await runCli(['run', path.join(work, 'slow.json'), '--dir', path.join(work, 'slow-out')]);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /Failed: .*[Ww]all/);
  assert.ok(Date.now() - started < 50_000, 'stopped long before the payload would have ended');
});

it('bad input exits 2 before anything runs', async () => {
  await writeFile(path.join(work, 'bad.jdl'), 'Executable = "x";\nArguments = ;\n');
  await writeFile(
    path.join(work, 'uploaded.json'),
    JSON.stringify({ executable: '/bin/true', inputSandbox: [`sha256:${'a'.repeat(64)}`] }),
  );
  const cases: [string[], RegExp][] = [
    [['run', path.join(work, 'bad.jdl')], /bad\.jdl:2:\d+/],
    [['run', path.join(work, 'param.jdl'), '--index', '9'], /describes 3 job/],
    [['run', path.join(work, 'uploaded.json')], /local input files only/],
    [['run', path.join(work, 'missing.json')], /cannot read/],
  ];
  for (const [args, message] of cases) {
    const result = await runCli(args, {});
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stdout} ${result.stderr}`);
    assert.match(result.stderr, message);
  }
});
