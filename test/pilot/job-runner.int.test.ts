import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { systemClock } from '../../shared/clock.ts';
import { PilothouseError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logger.ts';
import type { JobDescriptionInput } from '../../shared/job/description.ts';
import { JobRunner, type JobOutcome, type JobRunnerOptions, type StatusUpdate } from '../../pilot/job-runner.ts';
import { isAlive } from '../../pilot/process-tree.ts';
import type { SandboxTransfer } from '../../pilot/sandbox-transfer.ts';
import { matchedJob } from './fakes.ts';
import { rawTarGz } from './tar-fixtures.ts';

class MemoryTransfer implements SandboxTransfer {
  readonly store = new Map<string, Buffer>();
  readonly uploads: string[] = [];
  readonly tokens: string[] = [];
  failUploads = false;

  put(bytes: Buffer): string {
    const ref = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    this.store.set(ref, bytes);
    return ref;
  }

  async download(ref: string, jobToken: string, destFile: string): Promise<void> {
    this.tokens.push(jobToken);
    const bytes = this.store.get(ref);
    if (bytes === undefined) throw new PilothouseError('SANDBOX_NOT_FOUND', `no sandbox ${ref}`);
    await writeFile(destFile, bytes);
  }

  async upload(file: string, ref: string, jobToken: string): Promise<void> {
    this.tokens.push(jobToken);
    if (this.failUploads) throw new PilothouseError('MATCHER_UNREACHABLE', 'PUT sandbox: HTTP 503');
    const bytes = await readFile(file);
    assert.equal(
      ref,
      `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
      'the announced checksum is the bytes',
    );
    this.store.set(ref, bytes);
    this.uploads.push(ref);
  }

  /** Unpacks an uploaded output sandbox; returns file name -> content. */
  async unpack(ref: string): Promise<Map<string, string>> {
    const dir = await mkdtemp(path.join(tmpdir(), 'pilot-osb-'));
    const archive = path.join(dir, 'o.tar.gz');
    await writeFile(archive, this.store.get(ref) ?? Buffer.alloc(0));
    await mkdir(path.join(dir, 'x'));
    await tar.x({ file: archive, cwd: path.join(dir, 'x') });
    const files = new Map<string, string>();
    for (const name of (await readdir(path.join(dir, 'x'), { recursive: true, withFileTypes: true })).filter((e) =>
      e.isFile(),
    )) {
      const full = path.join(name.parentPath, name.name);
      files.set(path.relative(path.join(dir, 'x'), full), await readFile(full, 'utf8'));
    }
    return files;
  }
}

async function setup(overrides: Partial<JobRunnerOptions> = {}) {
  const workdir = await mkdtemp(path.join(tmpdir(), 'pilot-runner-'));
  const transfer = new MemoryTransfer();
  const runner = new JobRunner({
    workdir,
    site: 'Test.site.org',
    ce: 'ce.test',
    keepWorkdirs: false,
    killGraceMs: 300,
    appStatusPollMs: 20,
    maxOutputSandboxBytes: 10 * 1024 * 1024,
    unpackLimits: { maxBytes: 1024 * 1024, maxEntries: 100 },
    transfer,
    baseEnv: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', PILOTHOUSE_TOKEN: 'pilot-secret', HOME: '/nonexistent' },
    clock: systemClock,
    logger: silentLogger(),
    ...overrides,
  });
  return { workdir, transfer, runner };
}

/** Runs one job to its end; `onApplication` is called once the payload runs. */
async function run(
  runner: JobRunner,
  description: JobDescriptionInput,
  options: { jobId?: number; cores?: number; onApplication?: (kill: (reason: 'command') => void) => void } = {},
): Promise<{ outcome: JobOutcome; updates: StatusUpdate[] }> {
  const updates: StatusUpdate[] = [];
  const job = matchedJob(options.jobId ?? 1, { cores: options.cores ?? 1, description });
  const running = runner.start(job, (update) => {
    updates.push(update);
    if (update.minorStatus === 'Application') options.onApplication?.((reason) => running.kill(reason));
  });
  return { outcome: await running.done, updates };
}

const minor = (updates: StatusUpdate[]): string[] => updates.map((u) => `${u.status ?? ''}/${u.minorStatus ?? ''}`);

test('a successful payload: DIRAC status sequence, environment, std.out in the output sandbox, workdir removed', async () => {
  const { workdir, transfer, runner } = await setup();
  const script =
    'echo "id=$PILOTHOUSE_JOB_ID attempt=$PILOTHOUSE_JOB_ATTEMPT cores=$PILOTHOUSE_JOB_CORES omp=$OMP_NUM_THREADS site=$PILOTHOUSE_SITE ce=$PILOTHOUSE_CE mine=$MINE token=${PILOTHOUSE_TOKEN:-none} cwd_is_workdir=$([ "$PWD" = "$PILOTHOUSE_WORKDIR" ] && echo yes)"; echo oops >&2';
  const { outcome, updates } = await run(
    runner,
    { executable: 'sh', arguments: ['-c', script], environment: { MINE: 'x y' } },
    { jobId: 42, cores: 2 },
  );

  assert.deepEqual(minor(updates), [
    'Running/Job Initialization (isolation: none)',
    'Running/Application',
    'Completing/Application Finished Successfully',
    '/Uploading Output Sandbox',
    '/Output Sandbox Uploaded',
    'Done/Execution Complete',
  ]);
  assert.equal(outcome.status, 'Done');
  assert.equal(outcome.exitCode, 0);
  assert.equal(outcome.outputSandbox, transfer.uploads[0]);
  assert.equal(updates.at(-1)?.outputSandbox, outcome.outputSandbox);
  const files = await transfer.unpack(transfer.uploads[0] ?? '');
  assert.equal(
    files.get('std.out'),
    'id=42 attempt=1 cores=2 omp=2 site=Test.site.org ce=ce.test mine=x y token=none cwd_is_workdir=yes\n',
  );
  assert.equal(files.get('std.err'), 'oops\n');
  assert.deepEqual(transfer.tokens, ['job-token-42']);
  assert.deepEqual(await readdir(workdir), [], 'job directory and temporary archives removed');
});

test('a failing payload: Failed with its exit code, output sandbox still uploaded, selected by glob', async () => {
  const { transfer, runner } = await setup();
  const { outcome, updates } = await run(runner, {
    executable: 'sh',
    arguments: ['-c', 'mkdir -p out; echo r > out/a.dat; echo s > skip.txt; echo bad >&2; exit 3'],
    outputSandbox: ['out/*.dat', 'absent.root', '../../etc/passwd'],
  });
  assert.deepEqual(minor(updates).slice(2), [
    'Completing/Application Finished With Errors',
    '/Uploading Output Sandbox',
    '/Output Sandbox Uploaded (missing: absent.root, ../../etc/passwd)',
    'Failed/Application Finished With Errors (exit code 3)',
  ]);
  assert.equal(outcome.exitCode, 3);
  assert.ok(outcome.outputSandbox);
  const files = await transfer.unpack(outcome.outputSandbox);
  assert.deepEqual([...files.keys()].sort(), ['out/a.dat', 'std.err', 'std.out']);
  assert.equal(files.get('std.err'), 'bad\n');
});

test('an executable that does not exist: Failed / Application not found, no Completing step', async () => {
  const { transfer, runner } = await setup();
  const { outcome, updates } = await run(runner, { executable: 'pilothouse-no-such-program' });
  assert.deepEqual(minor(updates), ['Running/Job Initialization (isolation: none)', 'Failed/Application not found']);
  assert.equal(outcome.exitCode, undefined);
  assert.match(updates.at(-1)?.applicationStatus ?? '', /ENOENT/);
  assert.deepEqual(transfer.uploads, []);
});

test('wall-time limit: the whole process tree is killed, even a child in its own session', async () => {
  const { workdir, transfer, runner } = await setup({ keepWorkdirs: true });
  const script =
    'sleep 100 & echo $! > bg.pid; setsid sleep 100 & echo $! > session.pid; sleep 100 & echo $! > fg.pid; wait';
  const { outcome, updates } = await run(
    runner,
    { executable: 'sh', arguments: ['-c', script], requirements: { wallTimeSec: 1 } },
    { jobId: 5 },
  );
  assert.equal(outcome.status, 'Failed');
  assert.equal(outcome.minorStatus, 'Job has exceeded maximum wall clock time');
  assert.equal(outcome.exitCode, undefined);
  assert.ok(outcome.outputSandbox, 'output sandbox uploaded after a wall-time kill');
  assert.deepEqual(minor(updates).slice(1), [
    'Running/Application',
    'Completing/Uploading Output Sandbox',
    '/Output Sandbox Uploaded',
    'Failed/Job has exceeded maximum wall clock time',
  ]);
  const dir = path.join(workdir, 'job-5-1');
  const pids = await Promise.all(
    ['bg.pid', 'session.pid', 'fg.pid'].map(async (f) => Number(await readFile(path.join(dir, f), 'utf8'))),
  );
  assert.equal(pids.length, 3);
  for (const pid of pids) {
    assert.ok(pid > 0);
    assert.equal(isAlive(pid), false, `process ${pid} is gone`);
  }
  assert.equal(transfer.uploads.length, 1);
});

test('a kill command: SIGTERM to the tree, Failed / Received Kill signal, no upload', async () => {
  const { transfer, runner } = await setup();
  const started = Date.now();
  const { outcome, updates } = await run(
    runner,
    { executable: 'sh', arguments: ['-c', 'sleep 100 & sleep 100'] },
    { onApplication: (kill) => kill('command') },
  );
  assert.deepEqual(outcome, { status: 'Failed', minorStatus: 'Received Kill signal' });
  assert.equal(minor(updates).includes('Completing/Application Finished With Errors'), false);
  assert.deepEqual(transfer.uploads, []);
  assert.ok(Date.now() - started < 5_000);
});

test('input sandbox: downloaded with the job token, unpacked, a shipped script runs (made executable), app status forwarded', async () => {
  const { transfer, runner } = await setup();
  const ref = transfer.put(
    rawTarGz([
      { path: 'bin/', type: '5' },
      {
        path: 'bin/run.sh',
        mode: 0o644,
        body: '#!/bin/sh\necho "working" > "$PILOTHOUSE_APP_STATUS_FILE"\ncat input.txt > result.txt\necho "all good" >> "$PILOTHOUSE_APP_STATUS_FILE"\n',
      },
      { path: 'input.txt', body: 'hello sandbox\n' },
    ]),
  );
  const { outcome, updates } = await run(
    runner,
    { executable: './bin/run.sh', inputSandbox: [ref], outputSandbox: ['result.txt'] },
    { jobId: 8 },
  );
  assert.equal(outcome.status, 'Done', JSON.stringify(updates));
  assert.deepEqual(minor(updates).slice(0, 3), [
    'Running/Job Initialization (isolation: none)',
    '/Downloading InputSandbox',
    'Running/Application',
  ]);
  assert.equal(updates.find((u) => u.status === 'Completing')?.applicationStatus, 'all good');
  const files = await transfer.unpack(outcome.outputSandbox ?? '');
  assert.equal(files.get('result.txt'), 'hello sandbox\n');
  assert.equal(transfer.tokens[0], 'job-token-8');
});

test('a hostile or missing input sandbox fails the job before anything runs', async () => {
  const { transfer, runner } = await setup();
  const hostile = transfer.put(rawTarGz([{ path: '../../evil.sh', body: 'x' }]));
  const first = await run(runner, { executable: 'true', inputSandbox: [hostile] });
  assert.deepEqual(minor(first.updates), [
    'Running/Job Initialization (isolation: none)',
    '/Downloading InputSandbox',
    'Failed/Failed Downloading InputSandbox',
  ]);
  assert.match(first.updates.at(-1)?.applicationStatus ?? '', /\.\./);

  const missing = await run(runner, { executable: 'true', inputSandbox: [`sha256:${'0'.repeat(64)}`] });
  assert.equal(missing.outcome.minorStatus, 'Failed Downloading InputSandbox');
  assert.match(missing.updates.at(-1)?.applicationStatus ?? '', /no sandbox/);
});

test('an upload that keeps failing: Failed / Failed Uploading Output Sandbox, exit code kept, workdir kept', async () => {
  const { workdir, transfer, runner } = await setup();
  transfer.failUploads = true;
  const { outcome } = await run(runner, { executable: 'true' }, { jobId: 11 });
  assert.deepEqual(outcome, { status: 'Failed', minorStatus: 'Failed Uploading Output Sandbox', exitCode: 0 });
  await access(path.join(workdir, 'job-11-1', 'std.out'));
});
