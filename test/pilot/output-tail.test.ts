/** The pilot's reader of a payload's last output: the last bytes, cut at a line, handed out when they change. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OutputTailReader, readFileTail } from '../../pilot/output-tail.ts';

it('a long file is cut to its last bytes, starting at a line; a short one is whole; a missing one is empty', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-tail-'));
  try {
    const long = path.join(dir, 'long');
    await writeFile(long, Array.from({ length: 1000 }, (_, i) => `line ${i}`).join('\n') + '\n');
    const tail = await readFileTail(long, 64);
    assert.ok(tail.text.length <= 64);
    assert.match(tail.text, /^line \d+\n/, 'starts at a whole line');
    assert.ok(tail.text.endsWith('line 999\n'));
    const short = path.join(dir, 'short');
    await writeFile(short, 'hello\n');
    assert.deepEqual(await readFileTail(short, 64), { text: 'hello\n', size: 6 });
    assert.deepEqual(await readFileTail(path.join(dir, 'missing')), { text: '', size: -1 });
    // One long line cut in a multi-byte character: no broken character at the start.
    const wide = path.join(dir, 'wide');
    await writeFile(wide, 'é'.repeat(100));
    const cut = await readFileTail(wide, 15);
    assert.match(cut.text, /^é+$/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('the reader hands out a tail only when a stream grew, or when forced', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-tail-'));
  try {
    const out = path.join(dir, 'std.out');
    const err = path.join(dir, 'std.err');
    await writeFile(out, 'a\n');
    await writeFile(err, '');
    const reader = new OutputTailReader(out, err);
    assert.deepEqual(await reader.changed(), { stdout: 'a\n', stderr: '' });
    assert.equal(await reader.changed(), undefined, 'nothing new');
    await appendFile(err, 'warning\n');
    assert.deepEqual(await reader.changed(), { stdout: 'a\n', stderr: 'warning\n' });
    assert.deepEqual(await reader.changed(true), { stdout: 'a\n', stderr: 'warning\n' }, 'forced');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
