/** Server options compiled once: fault-sweeper flags, with defaults and clear refusals. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileMatcherConfig } from '../../matcher/config.ts';
import { DEFAULT_FAULT_SWEEPER_OPTIONS } from '../../matcher/maintenance/fault-sweeper.ts';
import { PilothouseError } from '../../shared/errors.ts';

const refusedFor = (field: string) => (error: unknown) =>
  error instanceof PilothouseError && error.code === 'CONFIG_INVALID' && error.details['field'] === field;

test('fault sweeper: DIRAC-like defaults unless --stalled-after-sec / --max-attempts say otherwise', () => {
  assert.deepEqual(compileMatcherConfig({ dataDir: '/tmp/ph' }).faultSweeper, DEFAULT_FAULT_SWEEPER_OPTIONS);
  const tuned = compileMatcherConfig({ dataDir: '/tmp/ph', stalledAfterSec: 300, maxAttempts: 2 }).faultSweeper;
  assert.deepEqual([tuned.stalledAfterSec, tuned.maxAttempts], [300, 2]);
});

test('fault sweeper: a stall time under three heartbeats, or a non-whole attempt count, is refused by name', () => {
  assert.throws(() => compileMatcherConfig({ dataDir: '/tmp/ph', stalledAfterSec: 89 }), refusedFor('stalledAfterSec'));
  assert.doesNotThrow(() =>
    compileMatcherConfig({ dataDir: '/tmp/ph', heartbeatIntervalSec: 10, stalledAfterSec: 30 }),
  );
  for (const maxAttempts of [0, 1.5, Number.NaN]) {
    assert.throws(() => compileMatcherConfig({ dataDir: '/tmp/ph', maxAttempts }), refusedFor('maxAttempts'));
  }
});
