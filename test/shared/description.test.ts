import { it } from 'node:test';
import assert from 'node:assert/strict';
import { PilothouseError } from '../../shared/errors.ts';
import { parseJobDescription, parseJobDescriptions } from '../../shared/job/description.ts';

const fieldOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof PilothouseError);
    assert.equal(error.code, 'VALIDATION_FAILED');
    return error.details.field;
  }
  assert.fail('expected a validation error');
};

it('description - fills defaults (1 core, one day, User, priority 1)', () => {
  const d = parseJobDescription({ executable: 'echo' });
  assert.deepEqual(d.requirements.cores, { min: 1, max: 1 });
  assert.equal(d.requirements.wallTimeSec, 86_400);
  assert.equal(d.jobType, 'User');
  assert.equal(d.priority, 1);
  assert.deepEqual(d.arguments, []);
});

it('description - cores.max defaults to cores.min', () => {
  assert.deepEqual(parseJobDescription({ executable: 'x', requirements: { cores: { min: 4 } } }).requirements.cores, {
    min: 4,
    max: 4,
  });
});

it('description - names the offending field, including inside a bulk list', () => {
  assert.equal(
    fieldOf(() => parseJobDescription({ executable: 'x', environment: { 'BAD NAME': 'v' } })),
    'environment.BAD NAME',
  );
  assert.equal(
    fieldOf(() => parseJobDescription({ executable: 'x', requirements: { cores: { min: 0 } } })),
    'requirements.cores.min',
  );
  assert.equal(
    fieldOf(() => parseJobDescriptions([{ executable: 'x' }, { executable: 'y', extra: 1 }], { maxJobs: 10 })),
    '[1].extra',
  );
  assert.equal(
    fieldOf(() => parseJobDescription({ executable: 'x', inputSandbox: ['sha1:abc'] })),
    'inputSandbox[0]',
  );
});
