/**
 * Archive fuzzing on real files: hand-built tar.gz archives with hostile entries (absolute paths, `..`,
 * NUL bytes, devices, FIFOs, links out of the directory and through each other) and byte-level
 * corruptions of valid archives (flipped bytes, truncations, in the tar or in the gzip stream). Each is
 * unpacked as a pilot unpacks an input sandbox and as the CLI unpacks an output sandbox. Either the
 * archive is refused with SANDBOX_UNSAFE / SANDBOX_TOO_LARGE, or it unpacks; and whatever happened,
 * nothing was written outside the target directory and no link inside it leads out.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { PilothouseError } from '../../shared/errors.ts';
import { unpackSandbox } from '../../pilot/sandbox-archive.ts';
import { unpackOutputSandbox } from '../../cli/unpack-output.ts';
import { rawTarGz, type RawEntry } from '../pilot/tar-fixtures.ts';
import { fuzzRuns } from './hostile.ts';

let root: string;
before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'ph-tar-fuzz-'));
});
after(() => rm(root, { recursive: true, force: true }));

const SAFE_SEGMENTS = ['a', 'b', 'dir', 'link', 'x'.repeat(60), 'ü'];
const HOSTILE_SEGMENTS = [...SAFE_SEGMENTS, '..', '.', '', 'a\0b', 'C:', '\\'];
const pathOf = (segments: string[], absolute: boolean) => `${absolute ? '/' : ''}${segments.join('/')}`;
// Mostly plausible paths, so that archives also get through the checks and unpack.
const entryPath = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.array(fc.constantFrom(...SAFE_SEGMENTS), { minLength: 1, maxLength: 3 }).map((p) => pathOf(p, false)),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.array(fc.constantFrom(...HOSTILE_SEGMENTS), { minLength: 1, maxLength: 4 }), fc.boolean())
      .map(([p, absolute]) => pathOf(p, absolute)),
  },
);
const linkTarget = fc.oneof(
  entryPath,
  fc.constantFrom('/etc/passwd', '../../outside/canary', '..', '.', 'link/..', 'link/../..', ''),
);
const entry: fc.Arbitrary<RawEntry> = fc.record({
  path: entryPath,
  type: fc.constantFrom('0', '0', '0', '0', '5', '5', '2', '1', '3', '6'),
  linkpath: linkTarget,
  body: fc.string({ maxLength: 64 }),
});

/** Entries a careful user would pack: files, directories, links to siblings, each path once. */
const plainEntry: fc.Arbitrary<RawEntry> = fc.oneof(
  fc.record({
    path: fc.constantFrom('a.txt', 'b.txt', 'dir/c.txt', 'dir/sub/d.txt', 'ü.dat'),
    body: fc.string({ maxLength: 64 }),
  }),
  fc.constantFrom<RawEntry>(
    { path: 'dir', type: '5' },
    { path: 'ln', type: '2', linkpath: 'a.txt' },
    { path: 'dir/up', type: '2', linkpath: '../b.txt' },
  ),
);

/** A tar.gz as bytes: plain, well-formed with hostile entries, or a valid one corrupted. */
const archive: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uniqueArray(plainEntry, { minLength: 1, maxLength: 6, selector: (e) => e.path }).map(rawTarGz),
  fc.array(entry, { minLength: 1, maxLength: 8 }).map(rawTarGz),
  fc
    .tuple(
      fc.array(entry, { minLength: 1, maxLength: 4 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      fc.option(fc.nat(), { nil: undefined }),
    )
    .map(([entries, flips, inGzip, cut]) => {
      const gz = rawTarGz(entries);
      const bytes = Buffer.from(inGzip ? gz : gunzipSync(gz));
      for (const [at, value] of flips) bytes[at % bytes.length] = value;
      const cutBytes = cut === undefined ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
      return inGzip ? cutBytes : gzipSync(cutBytes);
    }),
);

/** Every path under `dir`, relative, with what it is. */
async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(dir)) {
    const full = path.join(dir, name);
    const stat = await lstat(full);
    out.push(name);
    if (stat.isDirectory()) out.push(...(await listTree(full)).map((child) => `${name}/${child}`));
  }
  return out;
}

/** Nothing under `dest` is a device or FIFO, and no symlink resolves outside it. */
async function assertContained(dest: string, what: string): Promise<void> {
  for (const relative of await listTree(dest)) {
    const full = path.join(dest, relative);
    const stat = await lstat(full);
    assert.ok(stat.isFile() || stat.isDirectory() || stat.isSymbolicLink(), `${what}: ${relative} is a special file`);
    if (stat.isSymbolicLink()) {
      const target = path.resolve(path.dirname(full), await readlink(full));
      assert.ok(target === dest || target.startsWith(`${dest}/`), `${what}: ${relative} -> ${target} leads out`);
    }
  }
}

it('hostile and corrupted archives are refused with a code or unpacked inside their directory', async (t) => {
  const outcomes = new Map<string, number>();
  const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(archive, async (bytes) => {
      const base = path.join(root, `run-${run++}`);
      const outside = path.join(base, 'outside');
      await mkdir(outside, { recursive: true });
      await writeFile(path.join(outside, 'canary'), 'untouched');
      const file = path.join(base, 'sandbox.tar.gz');
      await writeFile(file, bytes);

      for (const unpacker of ['pilot', 'cli'] as const) {
        // Two levels down, so that `../..` from the target still lands inside `base`, where it is seen.
        const dest = path.join(base, unpacker, 'job', 'work');
        await mkdir(dest, { recursive: true });
        try {
          if (unpacker === 'pilot') await unpackSandbox(file, dest, { maxBytes: 1024 * 1024, maxEntries: 100 });
          else await unpackOutputSandbox(createReadStream(file), dest);
          count(`${unpacker}:unpacked`);
        } catch (error) {
          assert.ok(error instanceof PilothouseError, `${unpacker}: not a coded error: ${String(error)}`);
          assert.ok(['SANDBOX_UNSAFE', 'SANDBOX_TOO_LARGE'].includes(error.code), `${unpacker}: ${error.code}`);
          count(`${unpacker}:${error.code}`);
        }
        await assertContained(dest, unpacker);
        if (unpacker === 'cli') {
          for (const relative of await listTree(dest)) {
            assert.ok(!(await lstat(path.join(dest, relative))).isSymbolicLink(), `cli: ${relative} is a link`);
          }
        }
      }
      // Outside the targets: only what the test itself made.
      const tree = (await listTree(base)).filter((p) => !/^(pilot|cli)\/job\/work\//.test(p));
      assert.deepEqual(tree.sort(), [
        'cli',
        'cli/job',
        'cli/job/work',
        'outside',
        'outside/canary',
        'pilot',
        'pilot/job',
        'pilot/job/work',
        'sandbox.tar.gz',
      ]);
      await rm(base, { recursive: true, force: true });
    }),
    { numRuns: fuzzRuns(400) },
  );
  t.diagnostic([...outcomes].map(([k, n]) => `${k}:${n}`).join(' '));
  assert.ok(
    (outcomes.get('pilot:unpacked') ?? 0) > 0 && (outcomes.get('pilot:SANDBOX_UNSAFE') ?? 0) > 0,
    'both outcomes reached',
  );
});
