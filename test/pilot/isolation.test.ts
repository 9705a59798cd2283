/**
 * Choosing the isolation mode for what a node offers, and the container each job gets. (That payloads
 * really cannot read what they must not is shown with real pilots in test/e2e/payload-isolation.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, chmod, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PilothouseError } from '../../shared/errors.ts';
import { compilePilotConfig } from '../../pilot/config.ts';
import { bwrapArguments, resolveIsolation, type IsolationHost, type IsolationSettings } from '../../pilot/isolation.ts';

const settings = (over: Partial<IsolationSettings> = {}): IsolationSettings => ({
  choice: 'auto',
  workdir: os.tmpdir(),
  secretFiles: [],
  readOnlyPaths: [],
  jobUids: { first: 700000, last: 700003 },
  ...over,
});
const host = (over: Partial<IsolationHost> = {}): IsolationHost => ({
  isRoot: false,
  bwrapPath: '/usr/bin/bwrap',
  setprivPath: null,
  ...over,
});

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof PilothouseError);
    assert.equal(error.code, 'CONFIG_INVALID');
    return error.message;
  }
  assert.fail('expected a CONFIG_INVALID refusal');
}

test('auto takes the strongest mode the node offers', () => {
  assert.equal(resolveIsolation(settings(), host()).name, 'bwrap');
  assert.equal(resolveIsolation(settings(), host({ isRoot: true, setprivPath: '/usr/bin/setpriv' })).name, 'bwrap+uid');
  assert.equal(resolveIsolation(settings(), host({ isRoot: true, bwrapPath: null })).name, 'uid');
  // A root pilot without setpriv cannot drop to a job uid inside the container: a uid alone, then.
  assert.equal(resolveIsolation(settings(), host({ isRoot: true })).name, 'uid');
});

test('nothing to isolate with: auto refuses and names the way out; none must be asked for', () => {
  const message = refusal(() => resolveIsolation(settings(), host({ bwrapPath: null })));
  assert.match(message, /--isolation: .*bubblewrap.*--isolation none/);
  assert.equal(resolveIsolation(settings({ choice: 'none' }), host({ bwrapPath: null })).name, 'none');
});

test('an explicit mode this node cannot give is refused with the reason', () => {
  assert.match(
    refusal(() => resolveIsolation(settings({ choice: 'uid' }), host())),
    /needs the pilot to run as root/,
  );
  assert.match(
    refusal(() => resolveIsolation(settings({ choice: 'bwrap' }), host({ bwrapPath: null }))),
    /bubblewrap is not installed/,
  );
  assert.match(
    refusal(() => resolveIsolation(settings({ choice: 'bwrap' }), host({ isRoot: true }))),
    /setpriv/,
  );
});

test('uid mode refuses a working area that job uids could not walk down to', async () => {
  const closed = await mkdtemp(path.join(os.tmpdir(), 'ph-iso-'));
  await chmod(closed, 0o700);
  const workdir = path.join(closed, 'work');
  await mkdir(workdir);
  const message = refusal(() =>
    resolveIsolation(settings({ choice: 'uid', workdir }), host({ isRoot: true, bwrapPath: null })),
  );
  assert.match(message, new RegExp(`${closed} .*not searchable by other users \\(mode 700\\)`));
  await chmod(closed, 0o711);
  assert.equal(resolveIsolation(settings({ choice: 'uid', workdir }), host({ isRoot: true })).name, 'uid');
});

test('the container: system read-only, the working area hidden, the job directory bound back, visible secrets masked', () => {
  const args = bwrapArguments({
    system: [
      { path: '/usr', kind: 'dir' },
      { path: '/bin', kind: 'symlink', target: 'usr/bin' },
      { path: '/etc', kind: 'dir' },
    ],
    readOnlyPaths: ['/data'],
    workdir: '/scratch/pilot',
    secretFiles: ['/etc/pilothouse/pilot.token', '/home/site/pilot.secret', '/data/x/token'],
    jobDir: '/scratch/pilot/job-7-1',
  });
  const text = args.join(' ');
  assert.match(text, /^--ro-bind \/usr \/usr --symlink usr\/bin \/bin --ro-bind \/etc \/etc --ro-bind \/data \/data /);
  assert.ok(text.includes('--tmpfs /tmp --tmpfs /scratch/pilot'));
  assert.ok(
    text.indexOf('--tmpfs /scratch/pilot') < text.indexOf('--bind /scratch/pilot/job-7-1 /scratch/pilot/job-7-1'),
    'the job directory goes over the hidden working area, not under it',
  );
  assert.ok(text.includes('--ro-bind /dev/null /etc/pilothouse/pilot.token'), 'a token under /etc is masked');
  assert.ok(text.includes('--ro-bind /dev/null /data/x/token'), 'so is one under an extra read-only path');
  assert.ok(!text.includes('/home/site/pilot.secret'), '/home is not shown at all: nothing to mask');
  for (const flag of ['--unshare-pid', '--unshare-ipc', '--die-with-parent', '--new-session', '--chdir']) {
    assert.ok(args.includes(flag), flag);
  }
});

test('config: --isolation, --isolation-ro-paths and --job-uids are checked', () => {
  const base = { matcher: 'http://m:1', tokenFile: undefined };
  const env = { PILOTHOUSE_TOKEN: 't' };
  const config = compilePilotConfig(base, env);
  assert.deepEqual([config.isolation, config.jobUids], ['auto', { first: 700000, last: 700999 }]);
  const refused = (raw: Record<string, string>, pattern: RegExp) =>
    assert.throws(() => compilePilotConfig({ ...base, ...raw }, env), pattern);
  refused({ isolation: 'chroot' }, /--isolation: 'chroot' is not one of auto, bwrap, uid, none/);
  refused({ isolationRoPaths: 'data' }, /--isolation-ro-paths: 'data' must be an absolute/);
  refused({ jobUids: '10-20' }, /--job-uids: '10-20' must be FIRST-LAST/);
  refused({ jobUids: '9000-8000' }, /--job-uids/);
  assert.deepEqual(compilePilotConfig({ ...base, isolationRoPaths: '/cvmfs,/data' }, env).isolationReadOnlyPaths, [
    '/cvmfs',
    '/data',
  ]);
});
