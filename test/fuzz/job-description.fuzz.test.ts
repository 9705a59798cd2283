/**
 * Job description fuzzing: mutations of a full valid description (fields deleted, retyped, made huge,
 * unknown ones added) and values of any shape, single or in bulk. Each is either accepted as a
 * description that keeps the model's rules, or refused with VALIDATION_FAILED / SUBMISSION_TOO_LARGE
 * naming a field; nothing else escapes.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PilothouseError } from '../../shared/errors.ts';
import {
  MAX_CORES,
  MAX_WALL_TIME_SEC,
  parseJobDescription,
  parseJobDescriptions,
  type JobDescription,
} from '../../shared/job/description.ts';
import { fuzzRuns, hostileValue, mutated } from './hostile.ts';

const FULL = {
  name: 'fuzz',
  executable: '/bin/echo',
  arguments: ['a', 'b'],
  environment: { A: '1' },
  inputSandbox: [`sha256:${'a'.repeat(64)}`],
  outputSandbox: ['out.txt'],
  jobType: 'User',
  priority: 3,
  requirements: {
    cores: { min: 1, max: 4 },
    memoryMB: 2048,
    wallTimeSec: 3600,
    sites: ['Site.A'],
    bannedSites: ['Site.B'],
    tags: ['t'],
    platform: 'x86_64-v2',
    gpus: { min: 1, models: ['A100'] },
  },
};

function assertModel(description: JobDescription): void {
  assert.equal(typeof description.executable, 'string');
  assert.ok(description.executable.length > 0);
  const { cores, wallTimeSec } = description.requirements;
  assert.ok(Number.isInteger(cores.min) && cores.min >= 1 && cores.min <= cores.max && cores.max <= MAX_CORES);
  assert.ok(Number.isInteger(wallTimeSec) && wallTimeSec >= 1 && wallTimeSec <= MAX_WALL_TIME_SEC, String(wallTimeSec));
  assert.ok(description.arguments.every((a) => typeof a === 'string'));
}

function assertRefusal(error: unknown): void {
  assert.ok(error instanceof PilothouseError, `not a coded error: ${String(error)}`);
  assert.ok(['VALIDATION_FAILED', 'SUBMISSION_TOO_LARGE'].includes(error.code), error.code);
  assert.equal(typeof error.details.field, 'string', error.message);
}

it('the full description parses (the mutations start from a valid one)', () => {
  assertModel(parseJobDescription(FULL));
});

it('mutated and arbitrary descriptions are accepted within the model or refused naming a field', () => {
  let accepted = 0;
  fc.assert(
    fc.property(fc.oneof({ weight: 5, arbitrary: mutated(FULL) }, { weight: 1, arbitrary: hostileValue }), (raw) => {
      try {
        assertModel(parseJobDescription(raw));
        accepted += 1;
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error;
        assertRefusal(error);
      }
    }),
    { numRuns: fuzzRuns(5_000) },
  );
  assert.ok(accepted > 0, 'some mutations are still valid descriptions');
});

it('bulk submissions are all or nothing: any bad element refuses the whole, naming its index', () => {
  fc.assert(
    fc.property(fc.array(mutated(FULL), { minLength: 0, maxLength: 12 }), (raw) => {
      try {
        const parsed = parseJobDescriptions(raw, { maxJobs: 10 });
        assert.equal(parsed.length, raw.length);
        assert.ok(raw.length >= 1 && raw.length <= 10);
        parsed.forEach(assertModel);
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error;
        assertRefusal(error);
        const field = (error as PilothouseError).details.field as string;
        if (raw.length >= 1 && raw.length <= 10) assert.match(field, /^\[\d+\]/, 'the bad element is named');
      }
    }),
    { numRuns: fuzzRuns(1_000) },
  );
});
