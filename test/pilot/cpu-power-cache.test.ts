/**
 * The node's CPU power kept across pilots: measured once, reused while young and for the same node
 * key, measured again when stale, for another node key, or when the file is not to be trusted (a
 * link, writable by others, not JSON, an implausible figure); never kept with an age of 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cpuPowerOfNode, type CpuPowerCacheOptions } from '../../pilot/cpu-power-cache.ts';

async function setUp() {
  const dir = await mkdtemp(path.join(tmpdir(), 'cpu-power-cache-'));
  let nowMs = 1_000_000;
  let measured = 0;
  const options = (extra: Partial<CpuPowerCacheOptions> = {}): CpuPowerCacheOptions => ({
    file: path.join(dir, 'cpu-power.json'),
    maxAgeMs: 86_400_000,
    nodeKey: 'AMD EPYC|2|6.1|x86_64-v3',
    nowMs: () => nowMs,
    ...extra,
  });
  const measure = () => {
    measured += 1;
    return 20 + measured; // a different figure each time: which one came back tells who answered
  };
  return {
    dir,
    options,
    measure,
    measuredCount: () => measured,
    advance: (ms: number) => (nowMs += ms),
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

test('measured once, then reused by the next pilots while young; stale or another node measures again', async () => {
  const rig = await setUp();
  assert.deepEqual(await cpuPowerOfNode(rig.options(), rig.measure), { power: 21, cached: false });
  assert.deepEqual(await cpuPowerOfNode(rig.options(), rig.measure), { power: 21, cached: true });
  assert.equal(rig.measuredCount(), 1);
  assert.deepEqual(await cpuPowerOfNode(rig.options({ nodeKey: 'other|8|6.1|x86_64-v4' }), rig.measure), {
    power: 22,
    cached: false,
  });
  rig.advance(86_400_000);
  assert.deepEqual(await cpuPowerOfNode(rig.options({ nodeKey: 'other|8|6.1|x86_64-v4' }), rig.measure), {
    power: 23,
    cached: false,
  });
  const kept = JSON.parse(await readFile(rig.options().file, 'utf8')) as { power: number };
  assert.equal(kept.power, 23);
  await rig.close();
});

test('an age of 0 neither reads nor writes the file', async () => {
  const rig = await setUp();
  await cpuPowerOfNode(rig.options({ maxAgeMs: 0 }), rig.measure);
  await assert.rejects(readFile(rig.options().file, 'utf8'));
  await cpuPowerOfNode(rig.options(), rig.measure);
  assert.deepEqual(await cpuPowerOfNode(rig.options({ maxAgeMs: 0 }), rig.measure), { power: 23, cached: false });
  await rig.close();
});

test('a file not to be trusted is ignored: a link, writable by others, garbage, an implausible or future figure', async () => {
  const rig = await setUp();
  const file = rig.options().file;
  const record = (fields: Record<string, unknown>) =>
    JSON.stringify({ v: 1, nodeKey: rig.options().nodeKey, power: 99, measuredAtMs: 999_000, ...fields });
  const planted = path.join(rig.dir, 'planted.json');
  await writeFile(planted, record({}), { mode: 0o600 });
  await symlink(planted, file);
  assert.equal((await cpuPowerOfNode(rig.options(), rig.measure)).cached, false, 'a symbolic link');
  for (const [why, content, mode] of [
    ['writable by others', record({}), 0o666],
    ['not JSON', '{"v":1,', 0o600],
    ['implausible', record({ power: 1e9 }), 0o600],
    ['negative', record({ power: -3 }), 0o600],
    ['from the future', record({ measuredAtMs: 5_000_000 }), 0o600],
    ['another format', record({ v: 2 }), 0o600],
  ] as const) {
    await rm(file, { force: true });
    await writeFile(file, content, { mode });
    await chmod(file, mode);
    const answer = await cpuPowerOfNode(rig.options(), rig.measure);
    assert.equal(answer.cached, false, why);
    assert.notEqual(answer.power, 99, why);
  }
  await rig.close();
});
