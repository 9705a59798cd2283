import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { globToRegExp, selectOutputFiles } from '../../pilot/output-files.ts';

test('glob patterns: * stays in a segment, ** crosses them, ? is one character, [..] a class', () => {
  assert.ok(globToRegExp('*.root').test('a.root'));
  assert.ok(!globToRegExp('*.root').test('dir/a.root'));
  assert.ok(globToRegExp('**/*.root').test('a.root'));
  assert.ok(globToRegExp('**/*.root').test('x/y/a.root'));
  assert.ok(globToRegExp('out/**').test('out/a/b'));
  assert.ok(globToRegExp('run?.log').test('run1.log'));
  assert.ok(!globToRegExp('run?.log').test('run12.log'));
  assert.ok(globToRegExp('f[0-2].txt').test('f1.txt'));
  assert.ok(!globToRegExp('f[!0-2].txt').test('f1.txt'));
  assert.ok(!globToRegExp('a.b').test('axb'), 'dots are literal');
  assert.ok(globToRegExp('a(1)+.txt').test('a(1)+.txt'));
});

test('selects the standard outputs, names and globs; lists what is missing; refuses escapes', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pilot-out-'));
  await writeFile(path.join(dir, 'std.out'), '');
  await writeFile(path.join(dir, 'std.err'), '');
  await writeFile(path.join(dir, 'result.root'), '');
  await writeFile(path.join(dir, 'other.root'), '');
  await mkdir(path.join(dir, 'logs/deep'), { recursive: true });
  await writeFile(path.join(dir, 'logs/deep/x.log'), '');
  await writeFile(path.join(dir, 'summary.json'), '');
  await symlink('/etc/passwd', path.join(dir, 'pw'));

  const selection = await selectOutputFiles(dir, [
    '*.root',
    'logs/**/*.log',
    './summary.json',
    'missing.txt',
    'nothing-*.dat',
    '../etc/passwd',
    '/etc/passwd',
    'pw',
    'result.root',
  ]);
  assert.deepEqual(selection.files, [
    'std.out',
    'std.err',
    'other.root',
    'result.root',
    'logs/deep/x.log',
    'summary.json',
    'pw',
  ]);
  assert.deepEqual(selection.missing, ['missing.txt', 'nothing-*.dat']);
  assert.deepEqual(selection.refused, ['../etc/passwd', '/etc/passwd']);
});

test('a directory and a file inside it are packed once', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pilot-out-'));
  await mkdir(path.join(dir, 'out'));
  await writeFile(path.join(dir, 'out/a'), '');
  const selection = await selectOutputFiles(dir, ['out', 'out/a']);
  assert.deepEqual(selection.files, ['out']);
  assert.deepEqual(selection.missing, ['std.out', 'std.err']);
});
