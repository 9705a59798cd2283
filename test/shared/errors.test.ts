/** The error registry and docs/errors.md list the same codes with the same HTTP status (fastify's habit). */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { ERROR_CODES, PilothouseError, toPilothouseError } from '../../shared/errors.ts';

it('errors - every code is documented in docs/errors.md with its status, and nothing else is', async () => {
  const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Map(
    [...doc.matchAll(/^\| `([A-Z_]+)` +\| (\d{3}) +\| (yes|no) +\|/gm)].map((m) => [
      m[1],
      { status: Number(m[2]), retryable: m[3] === 'yes' },
    ]),
  );
  assert.deepEqual([...documented.keys()].sort(), Object.keys(ERROR_CODES).sort());
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    assert.deepEqual(documented.get(code), { status: spec.httpStatus, retryable: spec.retryable }, code);
  }
});

it('errors - instanceof survives a second copy of the class (bundle brand), and unknown throws become INTERNAL', () => {
  const error = new PilothouseError('JOB_NOT_FOUND', 'no job 1', { jobId: 1 });
  // What a second bundled copy of the class produces: a different class, the same global brand.
  const fromOtherCopy = Object.defineProperty(new Error('x'), Symbol.for('pilothouse.error'), { value: true });
  assert.ok(error instanceof PilothouseError);
  assert.equal(error.httpStatus, 404);
  assert.deepEqual(error.toJSON(), { code: 'JOB_NOT_FOUND', message: 'no job 1', retryable: false, jobId: 1 });
  assert.ok(!(new Error('x') instanceof PilothouseError));
  assert.ok(fromOtherCopy instanceof PilothouseError);
  const internal = toPilothouseError('boom');
  assert.equal(internal.code, 'INTERNAL');
  assert.equal(internal.retryable, true);
});
