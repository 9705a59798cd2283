/**
 * dist/pilot.mjs keeps V8's compiled code of the pilot for the next pilots on the node
 * (pilot/loader.ts, pilot/code-cache.ts), run as real processes: the first pilot writes the cache, the
 * next one compiles from it (and so leaves the file as it is: a pilot whose cache V8 refused writes a
 * new one), a cache that is garbage or a planted link is replaced and never stops a pilot, and
 * `PILOTHOUSE_CODE_CACHE` moves the cache or turns it off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bundle = path.join(root, 'dist/pilot.mjs');
const CACHE_NAME = new RegExp(
  `^pilothouse-code-${process.getuid?.() ?? 'user'}-[0-9a-f]{16}-${process.version}-${process.arch}\\.bin$`,
);

/** `node dist/pilot.mjs --help` with this environment; its help must come out whatever the cache. */
async function pilotHelp(env: Record<string, string>): Promise<void> {
  const child = spawn(process.execPath, [bundle, '--help'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, output);
  assert.match(output, /Usage: pilot\.mjs \[options\]/);
}

async function cacheFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.startsWith('pilothouse-code-'));
}

test('bundle: the first pilot keeps its compiled code, the next compiles from it', async () => {
  assert.ok(existsSync(bundle), 'dist/pilot.mjs must be built first (npm run build; npm test does it)');
  const dir = await mkdtemp(path.join(tmpdir(), 'pilot-code-cache-'));
  await pilotHelp({ TMPDIR: dir });
  const [name, ...others] = await cacheFiles(dir);
  assert.ok(name !== undefined && others.length === 0, `one cache file, not ${String(name)} and ${others.join(', ')}`);
  assert.match(name, CACHE_NAME);
  const file = path.join(dir, name);
  const written = await stat(file);
  assert.equal(written.mode & 0o777, 0o600);
  assert.ok(written.size > 100_000, `a cache of the whole program, not ${written.size} bytes`);

  await pilotHelp({ TMPDIR: dir });
  const after = await stat(file);
  assert.equal(after.ino, written.ino, 'V8 took the cache: the second pilot did not write a new one');
  assert.equal(after.mtimeMs, written.mtimeMs);
  await rm(dir, { recursive: true, force: true });
});

test('bundle: a garbage cache or a planted link is replaced, and the pilot runs all the same', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pilot-code-cache-'));
  await pilotHelp({ TMPDIR: dir });
  const [name] = await cacheFiles(dir);
  assert.ok(name !== undefined);
  const file = path.join(dir, name);

  // Garbage of this user: read, refused by V8, compiled from source and written anew.
  await rm(file);
  await writeFile(file, Buffer.alloc(200_000, 0x5a), { mode: 0o600 });
  const garbage = await stat(file);
  await pilotHelp({ TMPDIR: dir });
  const rewritten = await stat(file);
  assert.notEqual(rewritten.ino, garbage.ino, 'a refused cache is replaced');
  assert.notDeepEqual(await readFile(file), Buffer.alloc(200_000, 0x5a));
  await pilotHelp({ TMPDIR: dir });
  assert.equal((await stat(file)).ino, rewritten.ino, 'and the new one is taken');

  // A link to someone's file: not followed when reading, and writing replaces the link, not its target.
  const target = path.join(dir, 'target');
  await writeFile(target, 'not a cache', { mode: 0o600 });
  await rm(file);
  await symlink(target, file);
  await pilotHelp({ TMPDIR: dir });
  assert.equal(await readFile(target, 'utf8'), 'not a cache');
  assert.ok((await lstat(file)).isFile(), 'the link was replaced by a cache file');
  await rm(dir, { recursive: true, force: true });
});

test('bundle: PILOTHOUSE_CODE_CACHE names the directory, or "off" keeps no cache', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pilot-code-cache-'));
  const chosen = path.join(dir, 'chosen');
  await mkdir(chosen);
  await pilotHelp({ TMPDIR: dir, PILOTHOUSE_CODE_CACHE: chosen });
  assert.equal((await cacheFiles(chosen)).length, 1);
  assert.deepEqual(await cacheFiles(dir), []);

  const off = await mkdtemp(path.join(tmpdir(), 'pilot-code-cache-off-'));
  await pilotHelp({ TMPDIR: off, PILOTHOUSE_CODE_CACHE: 'off' });
  assert.deepEqual(await cacheFiles(off), []);
  // A directory that does not exist: the pilot runs, nothing is kept.
  await pilotHelp({ TMPDIR: off, PILOTHOUSE_CODE_CACHE: path.join(dir, 'missing') });
  assert.equal(existsSync(path.join(dir, 'missing')), false);
  await rm(dir, { recursive: true, force: true });
  await rm(off, { recursive: true, force: true });
});
