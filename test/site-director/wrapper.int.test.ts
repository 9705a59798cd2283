/**
 * The generated pilot wrapper, run by a real /bin/sh: what it hands the pilot (options on the command
 * line, the secret only in a 0600 file, never in argv, the environment or its output), how it finds
 * Node.js and the bundle, what it says and exits with when the pilot cannot start, and that the batch
 * system's SIGTERM reaches the pilot. A stand-in `node` records what the pilot would have received;
 * its `-e` calls (version check, sha256, download) go to the real Node.js.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { generateWrapper, type WrapperOptions } from '../../site-director/wrapper/wrapper.ts';
import { waitFor } from '../helpers/wait.ts';

const SECRET = 'phps_never-shown-anywhere-0123456789';
let dir: string;
let tools: string;
let server: Server;
let serverUrl: string;
const bundleBytes = Buffer.from('// the real pilot bundle\n');
const bundleSha = createHash('sha256').update(bundleBytes).digest('hex');

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ph-wrapper-'));
  // A PATH with the tools a worker node has, but no node of its own.
  tools = path.join(dir, 'bin');
  await mkdir(tools);
  for (const tool of [
    'hostname',
    'uname',
    'date',
    'mktemp',
    'rm',
    'mkdir',
    'cp',
    'mv',
    'cat',
    'sleep',
    'stat',
    'env',
    'printf',
  ]) {
    await symlink(`/usr/bin/${tool}`, path.join(tools, tool)).catch(() =>
      symlink(`/bin/${tool}`, path.join(tools, tool)),
    );
  }
  server = createServer((req, res) => {
    if (req.url === '/evil/api/pilot-bundle') res.end('// a bundle someone changed on the way\n');
    else if (req.url === '/broken/api/pilot-bundle') res.writeHead(500).end('boom');
    else res.end(bundleBytes);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  serverUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

/** A stand-in node: -e goes to the real one; running a bundle records argv, env and the secret file. */
async function recordingNode(
  name: string,
  behaviour = 'exit 7',
  preamble = '',
): Promise<{ node: string; record: string }> {
  const record = path.join(dir, `${name}-record`);
  const node = path.join(dir, `${name}-node`);
  await writeFile(
    node,
    `#!/bin/sh
[ "$1" = "-e" ] && exec ${process.execPath} "$@"
[ "$1" = "--version" ] && exec ${process.execPath} --version
${preamble}
printf '%s\\n' "$@" > ${record}.argv
env > ${record}.env
while [ $# -gt 0 ]; do [ "$1" = "--secret-file" ] && { cat "$2" > ${record}.secret; stat -c %a "$2" > ${record}.mode; }; shift; done
${behaviour}
`,
  );
  await chmod(node, 0o755);
  return { node, record };
}

function options(overrides: Partial<WrapperOptions> = {}): WrapperOptions {
  return {
    director: 'sd1',
    stamp: 'a'.repeat(32),
    secret: SECRET,
    matcherUrl: serverUrl,
    site: 'LCG.Test.org',
    ce: 'ce1',
    queue: 'long',
    bundleSha256: bundleSha,
    nodePaths: [],
    bundlePaths: [],
    caFile: null,
    pilot: {
      cores: 2,
      memoryMB: 1000,
      wallTimeSec: 3600,
      gpus: 0,
      wholeNode: false,
      tags: ['a', 'b'],
      requiredTags: ['b'],
      idleTimeoutSec: 30,
      extraArgs: ['--log-level', "it's debug"],
    },
    ...overrides,
  };
}

async function runWrapper(wrapper: string, env: Record<string, string> = {}) {
  const file = path.join(dir, `wrapper-${Math.random().toString(36).slice(2)}.sh`);
  await writeFile(file, wrapper);
  const work = path.join(dir, `work-${Math.random().toString(36).slice(2)}`);
  await mkdir(work);
  const result = await execa('/bin/sh', [file], {
    reject: false,
    // A cache of its own unless the test shares one (a cached bundle would skip the download).
    env: {
      PATH: tools,
      HOME: dir,
      PILOTHOUSE_WORK_BASE: work,
      PILOTHOUSE_BUNDLE_CACHE: path.join(work, 'cache'),
      ...env,
    },
    extendEnv: false,
  });
  return { ...result, work };
}

it('wrapper - hands the pilot its options, the secret only as a 0600 file, and passes its exit code on', async () => {
  const { node, record } = await recordingNode('ok');
  const cache = { PILOTHOUSE_BUNDLE_CACHE: path.join(dir, 'cache') };
  const result = await runWrapper(generateWrapper(options({ nodePaths: [node] })), cache);
  assert.equal(result.exitCode, 7, result.stderr);
  const argv = (await readFile(`${record}.argv`, 'utf8')).trim().split('\n');
  const bundle = argv[0] as string;
  assert.deepEqual(argv.slice(1), [
    '--matcher',
    serverUrl,
    '--secret-file',
    argv[4],
    '--stamp',
    'a'.repeat(32),
    '--site',
    'LCG.Test.org',
    '--ce',
    'ce1',
    '--queue',
    'long',
    '--workdir',
    argv[14],
    '--cores',
    '2',
    '--idle-timeout-sec',
    '30',
    '--memory-mb',
    '1000',
    '--wall-time-sec',
    '3600',
    '--tags',
    'a,b',
    '--required-tags',
    'b',
    '--log-level',
    "it's debug",
  ]);
  assert.equal(
    await readFile(bundle, 'utf8').catch(() => 'removed'),
    'removed',
    'the work directory is gone after the pilot',
  );
  assert.equal((await readFile(`${record}.secret`, 'utf8')).trim(), SECRET);
  assert.equal((await readFile(`${record}.mode`, 'utf8')).trim(), '600');
  assert.ok(!argv.some((arg) => arg.includes(SECRET)), 'not on the command line');
  assert.doesNotMatch(await readFile(`${record}.env`, 'utf8'), /phps_/, 'not in the environment');
  assert.doesNotMatch(`${result.stdout}${result.stderr}`, /phps_/, 'not in the output');
  assert.match(result.stderr, /pilot bundle downloaded from/);
  assert.match(result.stderr, /the pilot exited with code 7/);
  assert.deepEqual(await readdir(result.work), [], 'the temporary directory is removed');
  assert.ok(argv[14]?.startsWith(result.work));
  // The download went into the node's cache: the next pilot starts from it.
  assert.ok((await stat(path.join(dir, 'cache', `pilot-${bundleSha}.mjs`))).isFile());
  const second = await runWrapper(generateWrapper(options({ nodePaths: [node] })), cache);
  assert.match(second.stderr, new RegExp(`pilot bundle ${path.join(dir, 'cache')}`));
});

it('wrapper - without a Node.js >= 20 it says what it tried and exits 64', async () => {
  const old = path.join(tools, 'node');
  await writeFile(old, '#!/bin/sh\n[ "$1" = "-e" ] && exit 1\necho v18.19.0\n');
  await chmod(old, 0o755);
  try {
    const result = await runWrapper(generateWrapper(options({ nodePaths: ['/opt/missing/bin/node'] })));
    assert.equal(result.exitCode, 64);
    assert.match(
      result.stderr,
      /cannot start the pilot: no Node\.js >= 20 found \(tried: \/opt\/missing\/bin\/node .*\/bin\/node/,
    );
  } finally {
    await rm(old);
  }
});

it('wrapper - a bundle whose sha256 is not the expected one never runs (exit 67)', async () => {
  const { node, record } = await recordingNode('evil');
  const result = await runWrapper(generateWrapper(options({ nodePaths: [node], matcherUrl: `${serverUrl}/evil` })));
  assert.equal(result.exitCode, 67);
  assert.match(result.stderr, /sha256 [0-9a-f]{64}, expected/);
  await assert.rejects(readFile(`${record}.argv`), 'the pilot was not started');
});

it('wrapper - a matcher that cannot serve the bundle is exit 66, after retries', async () => {
  const { node } = await recordingNode('broken');
  const result = await runWrapper(generateWrapper(options({ nodePaths: [node], matcherUrl: `${serverUrl}/broken` })));
  assert.equal(result.exitCode, 66);
  assert.match(result.stderr, /HTTP 500/);
});

it('wrapper - a copy of the bundle already on the node is used when its sha256 matches, and skipped when not', async () => {
  const { node } = await recordingNode('copy');
  const good = path.join(dir, 'cvmfs-pilot.mjs');
  const stale = path.join(dir, 'stale-pilot.mjs');
  await writeFile(good, bundleBytes);
  await writeFile(stale, '// last year\n');
  const result = await runWrapper(generateWrapper(options({ nodePaths: [node], bundlePaths: [stale, good] })));
  assert.equal(result.exitCode, 7);
  assert.match(result.stderr, new RegExp(`pilot bundle ${good}`));
});

it("wrapper - the batch system's SIGTERM reaches the pilot (it drains), and the wrapper exits with the pilot's code", async () => {
  const { node, record } = await recordingNode(
    'drain',
    'while :; do sleep 0.1; done',
    `trap 'echo drained > ${path.join(dir, 'drained')}; exit 0' TERM`,
  );
  const file = path.join(dir, 'drain-wrapper.sh');
  await writeFile(file, generateWrapper(options({ nodePaths: [node] })));
  const child = execa('/bin/sh', [file], {
    reject: false,
    env: { PATH: tools, HOME: dir, PILOTHOUSE_BUNDLE_CACHE: path.join(dir, 'cache') },
    extendEnv: false,
  });
  await waitFor(async () => readFile(`${record}.argv`, 'utf8').catch(() => undefined), 'the pilot started');
  child.kill('SIGTERM');
  const result = await child;
  assert.equal(result.exitCode, 0, result.stderr);
  assert.equal((await readFile(path.join(dir, 'drained'), 'utf8')).trim(), 'drained');
});
