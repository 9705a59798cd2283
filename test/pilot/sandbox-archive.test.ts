import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readlink, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PilothouseError } from '../../shared/errors.ts';
import { packSandbox, sha256File, unpackSandbox } from '../../pilot/sandbox-archive.ts';
import { rawTarGz, type RawEntry } from './tar-fixtures.ts';

const limits = { maxBytes: 1024 * 1024, maxEntries: 100 };

/** A scratch area: `<root>/job` is the destination, `<root>` must stay untouched. */
async function scratch(): Promise<{ root: string; job: string; archive: string }> {
  const root = await mkdtemp(path.join(tmpdir(), 'pilot-sandbox-'));
  const job = path.join(root, 'job');
  await mkdir(job);
  return { root, job, archive: path.join(root, 'in.tar.gz') };
}

async function refused(
  entries: RawEntry[],
  code: 'SANDBOX_UNSAFE' | 'SANDBOX_TOO_LARGE' = 'SANDBOX_UNSAFE',
  prepare?: (job: string) => Promise<void>,
): Promise<{ error: PilothouseError; root: string; job: string }> {
  const { root, job, archive } = await scratch();
  await prepare?.(job);
  await writeFile(archive, rawTarGz(entries));
  const before = (await readdir(root)).sort();
  const error = await unpackSandbox(archive, job, limits).then(
    () => assert.fail('the archive should have been refused'),
    (thrown: unknown) => thrown,
  );
  assert.ok(error instanceof PilothouseError, String(error));
  assert.equal(error.code, code, error.message);
  assert.deepEqual((await readdir(root)).sort(), before, 'nothing was written beside the job directory');
  return { error, root, job };
}

test('a benign archive unpacks with directories, modes and inside links', async () => {
  const { job, archive } = await scratch();
  await writeFile(
    archive,
    rawTarGz([
      { path: 'run.sh', body: '#!/bin/sh\necho hi\n', mode: 0o755 },
      { path: 'data/', type: '5' },
      { path: 'data/input.txt', body: 'payload' },
      { path: 'data/link', type: '2', linkpath: 'input.txt' },
      { path: 'up', type: '2', linkpath: 'data/../run.sh' },
      { path: 'hard', type: '1', linkpath: 'data/input.txt' },
    ]),
  );
  const summary = await unpackSandbox(archive, job, limits);
  assert.deepEqual(summary, { entries: 6, bytes: 18 + 7 });
  assert.equal(await readFile(path.join(job, 'data/input.txt'), 'utf8'), 'payload');
  assert.equal(await readlink(path.join(job, 'data/link')), 'input.txt');
  assert.equal(await readFile(path.join(job, 'hard'), 'utf8'), 'payload');
  assert.ok(((await stat(path.join(job, 'run.sh'))).mode & 0o100) !== 0, 'executable bit kept');
});

test('refuses an entry that climbs out with ..', async () => {
  const { error } = await refused([
    { path: 'ok.txt', body: 'x' },
    { path: '../escaped.txt', body: 'x' },
  ]);
  assert.match(error.message, /\.\./);
});

test('refuses an entry with .. in the middle', async () => {
  await refused([{ path: 'a/../../escaped.txt', body: 'x' }]);
});

test('refuses absolute paths', async () => {
  const { error } = await refused([{ path: '/tmp/pilot-absolute-escape.txt', body: 'x' }]);
  assert.match(error.message, /absolute/);
});

test('refuses symlinks that point outside', async () => {
  await refused([{ path: 'etc', type: '2', linkpath: '/etc' }]);
  await refused([{ path: 'up', type: '2', linkpath: '../..' }]);
  await refused([
    { path: 'sub/', type: '5' },
    { path: 'sub/up', type: '2', linkpath: '../../x' },
  ]);
});

test('refuses a symlink chain that escapes through another symlink', async () => {
  const { error } = await refused([
    { path: 'a', type: '2', linkpath: '.' },
    { path: 'b', type: '2', linkpath: 'a/..' },
  ]);
  assert.match(error.message, /through symlink a/);
});

test('refuses writing a file through a symlink from the archive or already on disk', async () => {
  await refused([
    { path: 'sub/', type: '5' },
    { path: 'lnk', type: '2', linkpath: 'sub' },
    { path: 'lnk/file', body: 'x' },
  ]);
  const outside = await mkdtemp(path.join(tmpdir(), 'pilot-outside-'));
  await refused([{ path: 's/evil', body: 'x' }], 'SANDBOX_UNSAFE', async (job) => {
    await symlink(outside, path.join(job, 's'));
  });
  assert.deepEqual(await readdir(outside), []);
});

test('refuses hard links to outside files', async () => {
  await refused([{ path: 'pw', type: '1', linkpath: '../../../etc/passwd' }]);
  await refused([{ path: 'pw', type: '1', linkpath: '/etc/passwd' }]);
});

test('refuses links that name themselves, a directory holding them or a path under them (node-tar never finished these)', async () => {
  // Found by the archive fuzzer: node-tar 7.5 waits forever on its own path reservation for each.
  for (const [path, type, linkpath] of [
    ['a/dir', '1', 'a'],
    ['a', '1', 'a/a'],
    ['link/x', '2', 'link'],
    ['self', '2', 'self'],
  ] as const) {
    const { error } = await refused([{ path, type, linkpath }]);
    assert.match(error.message, /itself, a directory holding it or a path under it/);
  }
});

test('refuses device files and FIFOs', async () => {
  const { error } = await refused([{ path: 'null', type: '3' }]);
  assert.match(error.message, /CharacterDevice/);
  await refused([{ path: 'fifo', type: '6' }]);
});

test('refuses archives above the entry or size caps', async () => {
  const many = Array.from({ length: 101 }, (_, i) => ({ path: `f${i}`, body: '' }));
  await refused(many, 'SANDBOX_TOO_LARGE');
  const { root, job, archive } = await scratch();
  await writeFile(
    archive,
    rawTarGz([
      { path: 'big', body: 'x'.repeat(600) },
      { path: 'big2', body: 'x'.repeat(600) },
    ]),
  );
  await assert.rejects(unpackSandbox(archive, job, { maxBytes: 1000, maxEntries: 10 }), { code: 'SANDBOX_TOO_LARGE' });
  assert.deepEqual(await readdir(job), [], 'nothing unpacked');
  assert.ok(root);
});

test('refuses a compression bomb even under generous caps, before writing anything', async () => {
  const { job, archive } = await scratch();
  await writeFile(archive, rawTarGz([{ path: 'zeros', body: '\0'.repeat(32 * 1024 * 1024) }]));
  const error = await unpackSandbox(archive, job, { maxBytes: 1024 ** 3, maxEntries: 10 }).catch(
    (e: unknown) => e as PilothouseError,
  );
  assert.equal((error as PilothouseError).code, 'SANDBOX_TOO_LARGE');
  assert.match((error as PilothouseError).message, /compression bomb/);
  assert.deepEqual(await readdir(job), [], 'nothing unpacked');
});

test('refuses bytes that are not a tar.gz', async () => {
  const { job, archive } = await scratch();
  await writeFile(archive, Buffer.from('definitely not an archive'.repeat(40)));
  await assert.rejects(unpackSandbox(archive, job, limits), { code: 'SANDBOX_UNSAFE' });
});

test('pack stores links as links and sha256File hashes the bytes', async () => {
  const { root, job } = await scratch();
  await writeFile(path.join(job, 'std.out'), 'out\n');
  await symlink('/etc/passwd', path.join(job, 'pw'));
  const out = path.join(root, 'out.tar.gz');
  await packSandbox(job, ['std.out', 'pw'], out);
  const bytes = await readFile(out);
  assert.equal(await sha256File(out), `sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  const back = path.join(root, 'back');
  await mkdir(back);
  // Our own output holds an absolute symlink: unpacking it as an input sandbox must be refused.
  await assert.rejects(unpackSandbox(out, back, limits), { code: 'SANDBOX_UNSAFE' });
  assert.deepEqual(await readdir(back), []);
  assert.ok((await lstat(path.join(job, 'pw'))).isSymbolicLink());
});
