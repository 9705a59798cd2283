/**
 * The compiled code a pilot keeps for the next pilots on its node (pilot/code-cache.ts): named after
 * the bundle, user, Node.js and architecture; read only from a plain file of this user that nobody
 * else may write, not through a link, not empty and not oversized; written whole and private. The
 * loader's use of it with V8 is tested on the real bundle in pilot.int.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, readFile, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CODE_CACHE_ENV,
  MAX_CODE_CACHE_BYTES,
  codeCacheFile,
  readCodeCache,
  writeCodeCache,
} from '../../pilot/code-cache.ts';

const identity = { uid: 1234, nodeVersion: 'v20.20.2', arch: 'x64' };

async function scratch(): Promise<{ dir: string; file: string; close: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'code-cache-'));
  return { dir, file: path.join(dir, 'code.bin'), close: () => rm(dir, { recursive: true, force: true }) };
}

test('the file is named after the bundle, user, Node.js and architecture; the setting moves or turns it off', () => {
  assert.equal(
    codeCacheFile('0123456789abcdef', {}, identity),
    path.join(tmpdir(), 'pilothouse-code-1234-0123456789abcdef-v20.20.2-x64.bin'),
  );
  assert.equal(codeCacheFile('0123456789abcdef', { [CODE_CACHE_ENV]: '' }, identity)?.startsWith(tmpdir()), true);
  assert.equal(
    codeCacheFile('0123456789abcdef', { [CODE_CACHE_ENV]: '/var/cache/ph' }, identity),
    '/var/cache/ph/pilothouse-code-1234-0123456789abcdef-v20.20.2-x64.bin',
  );
  assert.equal(codeCacheFile('0123456789abcdef', { [CODE_CACHE_ENV]: 'off' }, identity), null);
  assert.notEqual(
    codeCacheFile('0123456789abcdef', {}, identity),
    codeCacheFile('0123456789abcdef', {}, { ...identity, nodeVersion: 'v22.1.0' }),
  );
});

test('written private and whole, read back as written, replaced by the next write', async () => {
  const { dir, file, close } = await scratch();
  assert.equal(readCodeCache(file), undefined, 'no file, no cache');
  assert.equal(writeCodeCache(file, Buffer.from('first cache')), true);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.deepEqual(readCodeCache(file), Buffer.from('first cache'));
  assert.equal(writeCodeCache(file, Buffer.from('second')), true);
  assert.deepEqual(readCodeCache(file), Buffer.from('second'));
  assert.deepEqual(await readdir(dir), ['code.bin'], 'no temporary file is left behind');
  await close();
});

test('a file others may write, a link, an empty or oversized file is not read', async () => {
  const { dir, file, close } = await scratch();
  await writeFile(file, 'cache', { mode: 0o600 });
  await chmod(file, 0o622);
  assert.equal(readCodeCache(file), undefined, 'writable by group and others');
  await chmod(file, 0o620);
  assert.equal(readCodeCache(file), undefined, 'writable by the group');
  await chmod(file, 0o644);
  assert.deepEqual(readCodeCache(file), Buffer.from('cache'), 'readable by others is fine: it is not secret');

  const target = path.join(dir, 'elsewhere.bin');
  await writeFile(target, 'planted', { mode: 0o600 });
  const link = path.join(dir, 'link.bin');
  await symlink(target, link);
  assert.equal(readCodeCache(link), undefined, 'a link is not followed');
  assert.equal(writeCodeCache(link, Buffer.from('kept')), true, 'writing replaces the link itself');
  assert.equal(await readFile(target, 'utf8'), 'planted', 'the link target is untouched');
  assert.deepEqual(readCodeCache(link), Buffer.from('kept'));

  const empty = path.join(dir, 'empty.bin');
  await writeFile(empty, '', { mode: 0o600 });
  assert.equal(readCodeCache(empty), undefined);
  const huge = path.join(dir, 'huge.bin');
  await writeFile(huge, 'x', { mode: 0o600 });
  await truncate(huge, MAX_CODE_CACHE_BYTES + 1);
  assert.equal(readCodeCache(huge), undefined);
  assert.equal(readCodeCache(dir), undefined, 'a directory is not a cache');
  await close();
});

test('nothing is written where it cannot be, nor an empty or oversized cache', async () => {
  const { dir, file, close } = await scratch();
  assert.equal(writeCodeCache(path.join(dir, 'missing', 'code.bin'), Buffer.from('cache')), false);
  assert.equal(writeCodeCache(file, Buffer.alloc(0)), false);
  assert.equal(writeCodeCache(file, Buffer.alloc(MAX_CODE_CACHE_BYTES + 1)), false);
  assert.deepEqual(await readdir(dir), []);
  await close();
});
