/**
 * Hostile input sandboxes through the real matcher and a real pilot: an entry climbing out with `..`,
 * an absolute path, a symlink pointing out (and a file written through it), a hard link to a file
 * outside, and a tar bomb (a few KiB that unpack to far more than the pilot allows). Each job fails
 * before its payload runs, with the reason in its application status, and nothing is written outside
 * the job's directory — the pilot's working area is empty afterwards.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { waitFor } from '../helpers/wait.ts';
import { rawTarGz, type RawEntry } from '../pilot/tar-fixtures.ts';

/** Text that does not compress much (hex of random bytes). */
function randomText(chars: number): string {
  return randomBytes(Math.ceil(chars / 2))
    .toString('hex')
    .slice(0, chars);
}

describe('pilot agent - hostile input sandboxes', () => {
  let m: TestMatcher;
  let pilot: PilotProcess;
  let root: string;
  let workdir: string;
  let outside: string;

  before(async () => {
    m = await startTestMatcher();
    root = await mkdtemp(path.join(os.tmpdir(), 'ph-hostile-'));
    workdir = path.join(root, 'work');
    outside = path.join(root, 'outside');
    pilot = await spawnPilot({
      matcherUrl: m.url,
      token: await m.pilotToken('local'),
      args: [
        '--site',
        'Hostile.site',
        '--cores',
        '1',
        '--workdir',
        workdir,
        '--max-unpacked-mb',
        '4',
        '--drain-file',
        'none',
        '--idle-timeout-sec',
        '600',
      ],
    });
  });
  after(async () => {
    await pilot.stop('SIGTERM');
    await m.close();
  });

  const upload = async (entries: RawEntry[]): Promise<string> => {
    const bytes = rawTarGz(entries);
    const ref = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const response = await m.api('PUT', `/api/sandboxes/${ref}`, { body: bytes, contentType: 'application/gzip' });
    assert.ok(response.status === 201 || response.status === 200, JSON.stringify(response.body));
    return ref;
  };

  const cases: { name: string; entries: () => RawEntry[]; reason: RegExp; victims: () => string[] }[] = [
    {
      name: "an entry that climbs out with '..'",
      entries: () => [{ path: '../../outside-dotdot.txt', body: 'pwned' }],
      reason: /climbs out with '\.\.'/,
      victims: () => [path.join(root, 'outside-dotdot.txt'), path.join(workdir, '..', 'outside-dotdot.txt')],
    },
    {
      name: 'an absolute path',
      entries: () => [{ path: `${outside}/absolute.txt`, body: 'pwned' }],
      reason: /absolute path/,
      victims: () => [path.join(outside, 'absolute.txt')],
    },
    {
      name: 'a symlink pointing out, and a file written through it',
      entries: () => [
        { path: 'escape', type: '2', linkpath: outside },
        { path: 'escape/through-link.txt', body: 'pwned' },
      ],
      reason: /outside the sandbox|through symlink/,
      victims: () => [path.join(outside, 'through-link.txt')],
    },
    {
      name: 'a relative symlink climbing out',
      entries: () => [
        { path: 'up', type: '2', linkpath: '../../..' },
        { path: 'up/relative-link.txt', body: 'pwned' },
      ],
      reason: /outside the sandbox|through symlink/,
      victims: () => [path.join(root, 'relative-link.txt'), path.join(path.dirname(root), 'relative-link.txt')],
    },
    {
      name: 'a hard link to a file outside',
      entries: () => [{ path: 'passwd', type: '1', linkpath: '../../../../etc/passwd' }],
      reason: /outside the sandbox/,
      victims: () => [],
    },
    {
      name: 'a tar bomb (16 MiB of zeros in 16 KiB)',
      entries: () => [{ path: 'zeros.bin', body: '\0'.repeat(16 * 1024 * 1024) }],
      reason: /compression bomb|unpacks to more than 4194304 bytes/,
      victims: () => [],
    },
    {
      name: 'an archive that unpacks to more than --max-unpacked-mb',
      entries: () => [{ path: 'big.txt', body: randomText(6 * 1024 * 1024) }],
      reason: /unpacks to more than 4194304 bytes/,
      victims: () => [],
    },
  ];

  for (const hostile of cases) {
    it(`${hostile.name} is refused with a clear error, nothing written outside the job directory`, async () => {
      const ref = await upload(hostile.entries());
      const marker = path.join(root, `ran-${createHash('sha1').update(hostile.name).digest('hex').slice(0, 8)}`);
      const submitted = await m.api('POST', '/api/jobs', {
        json: {
          executable: 'touch',
          arguments: [marker],
          inputSandbox: [ref],
          requirements: { sites: ['Hostile.site'] },
        },
      });
      assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
      const [id] = submitted.body.jobIds as number[];
      const job = await waitFor(async () => {
        const body = (await m.api('GET', `/api/jobs/${id}`)).body;
        return body.status === 'Failed' || body.status === 'Done' ? body : undefined;
      }, `job ${id} to end`);
      assert.equal(job.status, 'Failed');
      assert.equal(job.minorStatus, 'Failed Downloading InputSandbox');
      assert.match(job.applicationStatus, hostile.reason);
      assert.equal(existsSync(marker), false, 'the payload never ran');
      for (const victim of hostile.victims()) assert.equal(existsSync(victim), false, `${victim} was not written`);
      assert.equal(existsSync(outside), false, 'nothing was created outside');
      // The job directory and the downloaded archive are gone: the working area is empty again.
      await waitFor(async () => (await readdir(workdir)).length === 0, 'the working area to be empty');
    });
  }
});
