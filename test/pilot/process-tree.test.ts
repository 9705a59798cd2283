import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseProcStat } from '../../pilot/process-tree.ts';
import { parseCpuMax, parseMemoryMax } from '../../pilot/probe.ts';
import { readApplicationStatus } from '../../pilot/app-status.ts';

test('parses /proc/<pid>/stat, even with spaces and parentheses in the command name', () => {
  const fields = [
    'S',
    '10',
    '42',
    '42',
    '0',
    '-1',
    '4194560',
    '100',
    '0',
    '0',
    '0',
    '250',
    '50',
    '0',
    '0',
    '20',
    '0',
    '1',
    '0',
    '123',
    '1000',
    '256',
  ];
  const sample = parseProcStat(`4711 (my (odd) cmd) ${fields.join(' ')}`);
  assert.deepEqual(sample, { pid: 4711, ppid: 10, pgid: 42, cpuSec: 3, rssBytes: 256 * 4096 });
  assert.equal(parseProcStat('garbage'), null);
});

test('cgroup limits: cpu.max and memory.max', () => {
  assert.equal(parseCpuMax('max 100000\n'), null);
  assert.equal(parseCpuMax('150000 100000\n'), 2);
  assert.equal(parseCpuMax('50000 100000'), 1);
  assert.equal(parseMemoryMax('max\n'), null);
  assert.equal(parseMemoryMax(`${2 * 1024 * 1024 * 1024}\n`), 2048);
});

test('the application status is the last non-empty line of the file', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pilot-app-'));
  const file = path.join(dir, 'status');
  assert.equal(await readApplicationStatus(file), null);
  await writeFile(file, 'starting\nevent 10 of 100\n\n');
  assert.equal(await readApplicationStatus(file), 'event 10 of 100');
  await writeFile(file, `${'x'.repeat(10_000)}\n${'y'.repeat(2000)}\n`);
  assert.equal(await readApplicationStatus(file), 'y'.repeat(1024));
});
