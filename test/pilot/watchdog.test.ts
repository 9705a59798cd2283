/** The watchdog's judgements over samples: memory, stalls, a full disk, and the disk walk. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { link, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { directoryUsageMB, diskFullVictim, JobWatch, type WatchdogLimits } from '../../pilot/watchdog.ts';

const limits = (over: Partial<WatchdogLimits> = {}): WatchdogLimits => ({
  memoryMB: 1000,
  memoryPolicy: 'kill',
  stallTimeoutMs: 0,
  stallMinCpuRatio: 0.01,
  ...over,
});

test('memory: above the grant is a kill; warn says it once; off and no grant never act', () => {
  const kill = new JobWatch(limits());
  assert.deepEqual(kill.assess({ atMs: 0, cpuSec: 1, rssMB: 900 }), { kind: 'ok' });
  assert.deepEqual(kill.assess({ atMs: 1000, cpuSec: 2, rssMB: 1200 }), { kind: 'memory', rssMB: 1200, limitMB: 1000 });
  assert.equal(kill.peakRssMB, 1200);

  const warn = new JobWatch(limits({ memoryPolicy: 'warn' }));
  assert.equal(warn.assess({ atMs: 0, cpuSec: 1, rssMB: 1200 }).kind, 'memory-warning');
  assert.equal(warn.assess({ atMs: 1000, cpuSec: 2, rssMB: 1300 }).kind, 'ok', 'warned once');

  assert.equal(new JobWatch(limits({ memoryPolicy: 'off' })).assess({ atMs: 0, cpuSec: 0, rssMB: 1e6 }).kind, 'ok');
  assert.equal(new JobWatch(limits({ memoryMB: 0 })).assess({ atMs: 0, cpuSec: 0, rssMB: 1e6 }).kind, 'ok');
  assert.equal(new JobWatch(limits({ memoryMB: null })).assess({ atMs: 0, cpuSec: 0, rssMB: 1e6 }).kind, 'ok');
});

test('stalled: judged only after a full window, on the CPU used over the last window', () => {
  const watch = new JobWatch(limits({ memoryMB: null, stallTimeoutMs: 60_000, stallMinCpuRatio: 0.01 }));
  // Busy for the first minute, then idle (a payload waiting on nothing).
  assert.equal(watch.assess({ atMs: 0, cpuSec: 0, rssMB: 1 }).kind, 'ok');
  assert.equal(watch.assess({ atMs: 30_000, cpuSec: 30, rssMB: 1 }).kind, 'ok');
  assert.equal(watch.assess({ atMs: 60_000, cpuSec: 60, rssMB: 1 }).kind, 'ok', 'busy window');
  assert.equal(
    watch.assess({ atMs: 90_000, cpuSec: 60.2, rssMB: 1 }).kind,
    'ok',
    'the last window still holds busy time',
  );
  const verdict = watch.assess({ atMs: 120_000, cpuSec: 60.3, rssMB: 1 });
  assert.equal(verdict.kind, 'stalled');
  assert.ok(verdict.kind === 'stalled' && verdict.windowSec === 60 && Math.abs(verdict.cpuSec - 0.3) < 1e-9);

  // 1 % of a core over the window is progress enough.
  const slow = new JobWatch(limits({ memoryMB: null, stallTimeoutMs: 60_000 }));
  for (let t = 0; t <= 300_000; t += 10_000)
    assert.equal(slow.assess({ atMs: t, cpuSec: t / 1000 / 50, rssMB: 1 }).kind, 'ok');

  const off = new JobWatch(limits({ memoryMB: null, stallTimeoutMs: 0 }));
  for (let t = 0; t <= 300_000; t += 10_000) assert.equal(off.assess({ atMs: t, cpuSec: 0, rssMB: 1 }).kind, 'ok');
});

test('disk full: the job that wrote the most is the one stopped; enough space or no jobs, none', () => {
  const used = new Map([
    ['1:1', 100],
    ['2:1', 5000],
    ['3:2', 40],
  ]);
  assert.equal(diskFullVictim(50, 100, used), '2:1');
  assert.equal(diskFullVictim(150, 100, used), null);
  assert.equal(diskFullVictim(null, 100, used), null);
  assert.equal(diskFullVictim(0, 100, new Map()), null);
});

test('a directory walk counts blocks, hard links once, and does not follow symlinks', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'du-'));
  await mkdir(path.join(dir, 'sub'));
  await writeFile(path.join(dir, 'sub', 'a.bin'), Buffer.alloc(2 * 1024 * 1024, 1));
  await link(path.join(dir, 'sub', 'a.bin'), path.join(dir, 'hard.bin'));
  await symlink('/usr', path.join(dir, 'usr-link'));
  const mb = await directoryUsageMB(dir);
  assert.ok(mb >= 2 && mb < 2.2, `${mb} MB`);
  assert.equal(await directoryUsageMB(path.join(dir, 'missing')), 0);
});
