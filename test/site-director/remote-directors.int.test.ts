/**
 * Real pilots through the other backends, end to end with a real matcher: started over SSH on the
 * lab's sshd (as the lab account), through the lab's ARC A-REX (fork LRMS, mapped to the lab
 * account), and through the HTCondor replica (HTCondor cannot run here: test/fixtures/fake-condor
 * reproduces the HTCondor 25 tools' formats; the pilots it starts are real processes). Each pilot
 * downloads the bundle from the matcher, exchanges its one-time secret and runs the waiting jobs;
 * the director follows it to its end and fetches its output.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { unpackOutputSandbox } from '../../cli/unpack-output.ts';
import { silentLogger } from '../../shared/logger.ts';
import { parseDirectorConfig } from '../../site-director/config/load.ts';
import { buildDirector } from '../../site-director/service.ts';
import { lab } from '../helpers/lab.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';

const l = lab();
const FAKE_CONDOR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/fake-condor');
let m: TestMatcher;
let dir: string;
let userToken: string;

before(async () => {
  m = await startTestMatcher();
  dir = await mkdtemp(path.join(os.tmpdir(), 'ph-remote-directors-'));
  userToken = await m.userToken('alice', 'lab');
  process.env.FAKE_CONDOR_DIR = path.join(dir, 'schedd');
  process.env.PATH = `${FAKE_CONDOR}:${process.env.PATH ?? ''}`;
});
after(async () => {
  await m.close();
  await rm(dir, { recursive: true, force: true });
});

/** One director with one CE (the YAML of its `ces:` entry), one queue `q` of that CE. */
async function runToTheEnd(
  ceYaml: string,
  tag: string,
  timeoutMs: number,
): Promise<{ pilot: any; output: any; ids: [number, ...number[]] }> {
  const config = parseDirectorConfig(
    `
name: lab-${tag}
pilot: { idleTimeoutSec: 3 }
sites:
  - name: LCG.Remote.test
    vos: [lab]
    ces:
${ceYaml}
`,
    path.join(dir, `${tag}.yaml`),
  );
  const built = buildDirector({
    config,
    matcherUrls: [m.url],
    tokenFile: m.matcher.adminTokenPath,
    logger: silentLogger(),
  });
  try {
    const submitted = await m.api('POST', '/api/jobs', {
      token: userToken,
      json: [1, 2].map((n) => ({
        executable: '/bin/sh',
        arguments: ['-c', `echo ${tag}-${n} as $(id -un)`],
        requirements: { tags: [tag], wallTimeSec: 600 },
      })),
    });
    const ids = submitted.body.jobIds as number[];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await built.director.runCycle();
      const jobs = (await m.api('POST', '/api/jobs/search', { token: userToken, json: { ids } })).body.jobs as {
        status: string;
      }[];
      const tracked = (await m.api('GET', `/api/pilots?director=lab-${tag}&tracked=true`)).body.pilots;
      if (jobs.every((job) => job.status === 'Done') && tracked.length === 0) break;
      assert.ok(
        Date.now() < deadline,
        `${tag}: jobs ${JSON.stringify(jobs.map((j) => j.status))}, ${tracked.length} pilot(s) still followed`,
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    const pilots = (await m.api('GET', `/api/pilots?director=lab-${tag}`)).body.pilots;
    const ran = pilots.find((p: { jobsMatched: number }) => p.jobsMatched > 0);
    assert.ok(ran, `${tag}: a pilot ran the jobs`);
    const output = (await m.api('GET', `/api/pilots/${ran.id}/output`)).body;
    assert.match(output.stderr, new RegExp(`pilothouse-wrapper: pilot ${ran.id}`));
    return { pilot: ran, output, ids: ids as [number, ...number[]] };
  } finally {
    await built.close();
  }
}

/** The job's std.out, from its output sandbox. */
async function jobStdout(id: number): Promise<string> {
  const response = await fetch(`${m.url}/api/jobs/${id}/output`, { headers: { authorization: `Bearer ${userToken}` } });
  assert.equal(response.status, 200);
  const target = path.join(dir, `job-${id}`);
  await unpackOutputSandbox(Readable.fromWeb(response.body as never), target);
  return readFile(path.join(target, 'std.out'), 'utf8');
}

it('ssh - pilots started in the background on the SSH host run the jobs as the remote account', async () => {
  const { pilot, ids } = await runToTheEnd(
    `      - name: ssh.lab
        type: ssh
        ssh: { host: ${l.ssh.host}, port: ${l.ssh.port}, user: ${l.ssh.user}, keyFile: ${l.ssh.key}, knownHostsFile: ${l.ssh.knownHosts}, workDir: .pilothouse/director-${process.pid} }
        queues: [{ name: q, maxCores: 1, memoryMB: 1000, tags: [ssh], requiredTags: [ssh] }]`,
    'ssh',
    60_000,
  );
  assert.equal(pilot.backend, 'ssh');
  assert.equal(pilot.status, 'Done');
  assert.equal(pilot.node.hostname, os.hostname());
  assert.equal((await jobStdout(ids[0])).trim(), `ssh-1 as ${l.ssh.user}`);
});

it('htcondor (replica) - pilots of one cluster, each with its own wrapper as input file, run the jobs', async () => {
  const tokenFile = path.join(dir, 'ce.token');
  await writeFile(tokenFile, 'eyJ.scitoken.for-the-ce\n');
  const { pilot } = await runToTheEnd(
    `      - name: ce.lab.test
        type: htcondor
        htcondor: { pool: ce.lab.test:9619, workDir: ${dir}/condor-submit, tokenFile: ${tokenFile} }
        queues: [{ name: q, maxCores: 1, memoryMB: 1000, wallTimeSec: 3600, tags: [condor], requiredTags: [condor] }]`,
    'condor',
    60_000,
  );
  assert.equal(pilot.backend, 'htcondor');
  assert.match(pilot.backendRef, /^\d+\.\d+$/);
  assert.equal(pilot.backendStatus, '4 (Completed)');
  const calls = (await readFile(path.join(dir, 'schedd', 'calls.log'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  const submit = calls.find((call) => call.tool === 'condor_submit');
  assert.deepEqual(submit.args.slice(0, 7), [
    '-terse',
    '-pool',
    'ce.lab.test:9619',
    '-remote',
    'ce.lab.test',
    '-spool',
    submit.args[6],
  ]);
  assert.ok(
    calls.some((call) => call.tool === 'condor_transfer_data'),
    'output transferred back from the CE',
  );
});

it('arc - pilots submitted through A-REX REST (wrapper uploaded to the session) run the jobs', async () => {
  const { pilot, ids } = await runToTheEnd(
    `      - name: ${l.host}
        type: arc
        arc: { url: ${l.arc.url}, caFile: ${l.arc.ca}, certFile: ${l.arc.cert}, keyFile: ${l.arc.key} }
        queues: [{ name: ${l.arc.queue}, maxCores: 1, memoryMB: 1000, wallTimeSec: 3600, tags: [arc], requiredTags: [arc] }]`,
    'arc',
    180_000,
  );
  assert.equal(pilot.backend, 'arc');
  assert.equal(pilot.backendStatus, 'FINISHED');
  assert.equal(pilot.status, 'Done');
  // The payload ran as the account the CE maps the director's certificate to.
  assert.equal((await jobStdout(ids[0])).trim(), `arc-1 as ${l.user}`);
});
