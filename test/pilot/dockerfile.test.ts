/**
 * Dockerfile.pilot, checked without Docker: a small Node base, only dist/pilot.mjs copied in (and the
 * build context limited to it), a non-root user, and an entrypoint that runs the bundle — executed
 * here with plain node from the path the image would copy it to, it prints the pilot's --help.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const run = promisify(execFile);

interface Instruction {
  keyword: string;
  args: string;
}

/** The Dockerfile's instructions (comments dropped, continuation lines joined). */
async function instructions(file: string): Promise<Instruction[]> {
  const text = (await readFile(file, 'utf8')).replace(/\\\n/g, ' ');
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

test('Dockerfile.pilot: small base, only the bundle copied, non-root user, entrypoint runs the bundle', async () => {
  const steps = await instructions(path.join(root, 'Dockerfile.pilot'));
  const of = (keyword: string) => steps.filter((step) => step.keyword === keyword);

  assert.equal(of('FROM').length, 1);
  assert.match(
    of('FROM')[0]?.args ?? '',
    /^(node:20-slim|node:20-bookworm-slim|gcr\.io\/distroless\/nodejs20[\w-]*)(@sha256:[0-9a-f]+)?(:\w+)?$/,
  );
  assert.equal(of('ADD').length, 0, 'no ADD (no remote fetches, no archives unpacked)');
  const copies = of('COPY');
  assert.equal(copies.length, 1, 'one COPY');
  const [source, destination] = (copies[0]?.args ?? '').split(/\s+/).filter((arg) => !arg.startsWith('--'));
  assert.equal(source, 'dist/pilot.mjs', 'only the bundle is copied');
  assert.ok(destination?.startsWith('/'));
  assert.ok(
    !steps.some((step) => step.keyword === 'RUN' && /\bnpm\b|\byarn\b|node_modules/.test(step.args)),
    'no package install in the image',
  );

  const users = of('USER');
  assert.ok(users.length > 0, 'a USER is set');
  const user = users.at(-1)?.args ?? '';
  assert.ok(!/^(root|0)(:|$)/.test(user), `the last USER (${user}) is not root`);
  const lastUser = steps.lastIndexOf(users.at(-1) as Instruction);
  const entryIndex = steps.findIndex((step) => step.keyword === 'ENTRYPOINT');
  assert.ok(entryIndex > lastUser, 'the entrypoint runs as that user');

  const entrypoint = JSON.parse(of('ENTRYPOINT')[0]?.args ?? '[]') as string[];
  const cmd = JSON.parse(of('CMD')[0]?.args ?? '[]') as string[];
  const nodeAt = entrypoint.indexOf('node');
  assert.ok(nodeAt >= 0, 'exec form, running node');
  assert.equal(entrypoint[nodeAt + 1], destination, 'the entrypoint runs the copied bundle');
  if (nodeAt > 0) assert.match(entrypoint[0] ?? '', /tini|dumb-init/, 'an init as PID 1 reaps orphaned payloads');
  assert.deepEqual(cmd, ['--help']);

  const ignore = (await readFile(path.join(root, 'Dockerfile.pilot.dockerignore'), 'utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(ignore, ['*', '!dist/pilot.mjs'], 'the build context is the bundle only');

  const bundle = path.join(root, 'dist', 'pilot.mjs');
  assert.ok(existsSync(bundle), 'dist/pilot.mjs must be built first (npm run build; npm test does it)');
  // Lay the bundle out as the image does, alone, and run the entrypoint's node part with CMD.
  const image = await mkdtemp(path.join(os.tmpdir(), 'ph-image-'));
  const copied = path.join(image, destination as string);
  await mkdir(path.dirname(copied), { recursive: true });
  await copyFile(bundle, copied);
  const args = [...entrypoint.slice(nodeAt + 1), ...cmd].map((arg) => (arg === destination ? copied : arg));
  const { stdout } = await run(process.execPath, args, {
    cwd: image,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
  });
  assert.match(stdout, /Usage: pilot\.mjs \[options\]/);
  for (const flag of ['--matcher', '--token-file', '--cores', '--gpus', '--drain-file', '--stall-timeout-sec'])
    assert.ok(stdout.includes(flag), flag);
});
