/**
 * `pilothouse site-director` as an operator runs it (dist/cli.mjs in a child process): a config error
 * names the file, the line and the field, exits 2 and starts nothing; `--once --json` runs one cycle
 * against a real matcher and prints its report; a matcher that is down makes `--once` exit 5 with the
 * cycle paused; `pilots` and `pilots output` read what the director recorded.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli-process.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';

let m: TestMatcher;
let dir: string;

before(async () => {
  m = await startTestMatcher();
  dir = await mkdtemp(path.join(os.tmpdir(), 'ph-sd-cli-'));
});
after(async () => {
  await m.close();
  await rm(dir, { recursive: true, force: true });
});

const config = (queueLine: string) => `name: cli-director
cycle: { stateDir: state }
pilot: { idleTimeoutSec: 2 }
sites:
  - name: LCG.Cli.test
    vos: [lab]
    ces:
      - name: here
        type: local
        queues:
${queueLine}
`;

it('site-director - a config error names file, line and field, exits 2, and starts nothing', async () => {
  const file = path.join(dir, 'bad.yaml');
  await writeFile(file, config('          - { name: q, maxCores: 1, maxWaitingPilot: 3 }'));
  const result = await runCli([
    'site-director',
    '--config',
    file,
    '--matcher',
    m.url,
    '--token-file',
    m.matcher.adminTokenPath,
    '--once',
  ]);
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    new RegExp(`${file.replaceAll('.', '\\.')}:11: sites\\.0\\.ces\\.0\\.queues\\.0\\.maxWaitingPilot: `),
  );
  await assert.rejects(readdir(path.join(dir, 'state')), 'no state directory was made');
  const report = await m.api('GET', '/api/site-directors/cli-director');
  assert.equal(report.status, 404, 'no cycle ran');
});

it('site-director - --once --json runs one cycle and prints its report; pilots and their output are listed', async () => {
  const file = path.join(dir, 'ok.yaml');
  await writeFile(
    file,
    config('          - { name: q, maxCores: 1, memoryMB: 500, tags: [cli], requiredTags: [cli] }'),
  );
  const userToken = await m.userToken('alice', 'lab');
  await m.api('POST', '/api/jobs', {
    token: userToken,
    json: { executable: '/bin/true', requirements: { tags: ['cli'], wallTimeSec: 600 } },
  });
  const env = { PILOTHOUSE_TOKEN_FILE: m.matcher.adminTokenPath, PILOTHOUSE_MATCHER: m.url };
  const once = await runCli(['site-director', '--config', file, '--once', '--json'], env);
  assert.equal(once.code, 0, once.stderr);
  const report = JSON.parse(once.stdout);
  assert.equal(report.director, 'cli-director');
  assert.deepEqual([report.queues[0].waitingJobs, report.queues[0].submitted], [1, 1]);
  // Later cycles follow the pilot to its end and fetch its output.
  const deadline = Date.now() + 60_000;
  let pilots: { id: string; tracked: boolean; status: string }[] = [];
  while (Date.now() < deadline) {
    await runCli(['site-director', '--config', file, '--once'], env);
    pilots = JSON.parse((await runCli(['pilots', '--json', '--director', 'cli-director'], env)).stdout).pilots;
    if (pilots.length > 0 && pilots.every((p) => !p.tracked)) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  assert.equal(pilots[0]?.status, 'Done');
  const table = await runCli(['pilots', '--site', 'LCG.Cli.test'], env);
  assert.match(table.stdout, new RegExp(`${pilots[0]?.id}\\s+lab\\s+LCG\\.Cli\\.test/here/q\\s+Done`));
  const output = await runCli(['pilots', 'output', pilots[0]?.id as string], env);
  assert.equal(output.code, 0, output.stderr);
  assert.match(output.stdout, /--- stderr\npilothouse-wrapper: pilot /);
  const status = await runCli(['site-director', 'status', '--name', 'cli-director'], env);
  assert.match(status.stdout, /site director cli-director: cycle 1 /);
  assert.match(status.stdout, /LCG\.Cli\.test\/here\/q/);
  const unknown = await runCli(['pilots', 'output', 'no-such-pilot'], env);
  assert.equal(unknown.code, 4);
});

it('site-director - --once against a matcher that is down: the cycle pauses and the exit code is 5', async () => {
  const file = path.join(dir, 'ok.yaml');
  const result = await runCli([
    'site-director',
    '--config',
    file,
    '--matcher',
    'http://127.0.0.1:9',
    '--token-file',
    m.matcher.adminTokenPath,
    '--once',
  ]);
  assert.equal(result.code, 5);
  assert.match(result.stdout, /PAUSED: matcher unreachable/);
});
