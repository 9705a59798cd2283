/** Server options compiled once: fault-sweeper flags and limits, with defaults and clear refusals. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileMatcherConfig } from '../../matcher/config.ts';
import { DEFAULT_FAULT_SWEEPER_OPTIONS } from '../../matcher/maintenance/fault-sweeper.ts';
import { PilothouseError } from '../../shared/errors.ts';
import { DEFAULT_LIMITS } from '../../matcher/limits.ts';
import { formatByteSize, parseByteSize } from '../../shared/byte-size.ts';

const refusedFor = (field: string) => (error: unknown) =>
  error instanceof PilothouseError && error.code === 'CONFIG_INVALID' && error.details['field'] === field;

test('fault sweeper: DIRAC-like defaults unless --stalled-after-sec / --max-attempts say otherwise', () => {
  assert.deepEqual(compileMatcherConfig({ dataDir: '/tmp/ph' }).faultSweeper, DEFAULT_FAULT_SWEEPER_OPTIONS);
  const tuned = compileMatcherConfig({ dataDir: '/tmp/ph', stalledAfterSec: 300, maxAttempts: 2 }).faultSweeper;
  assert.deepEqual([tuned.stalledAfterSec, tuned.maxAttempts], [300, 2]);
});

test('fault sweeper: the matched timeout is an option, at least a minute', () => {
  assert.equal(
    compileMatcherConfig({ dataDir: '/tmp/ph', matchedTimeoutSec: 900 }).faultSweeper.matchedTimeoutSec,
    900,
  );
  for (const matchedTimeoutSec of [59, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(
      () => compileMatcherConfig({ dataDir: '/tmp/ph', matchedTimeoutSec }),
      refusedFor('matchedTimeoutSec'),
    );
  }
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

test('fault sweeper: its interval and the reschedule holds are options, bad values refused by name', () => {
  const defaults = compileMatcherConfig({ dataDir: '/tmp/ph' });
  assert.equal(defaults.faultSweepIntervalMs, 60_000);
  const tuned = compileMatcherConfig({ dataDir: '/tmp/ph', faultSweepIntervalSec: 0.5, rescheduleDelaysSec: '0, 5' });
  assert.equal(tuned.faultSweepIntervalMs, 500);
  assert.deepEqual(tuned.faultSweeper.rescheduleDelaysSec, [0, 5]);
  for (const faultSweepIntervalSec of [0, 0.05, 7200, Number.NaN]) {
    assert.throws(
      () => compileMatcherConfig({ dataDir: '/tmp/ph', faultSweepIntervalSec }),
      refusedFor('faultSweepIntervalSec'),
    );
  }
  for (const rescheduleDelaysSec of ['', '60,,180', '-1', 'soon', '90000']) {
    assert.throws(
      () => compileMatcherConfig({ dataDir: '/tmp/ph', rescheduleDelaysSec }),
      refusedFor('rescheduleDelaysSec'),
    );
  }
});

test('limits: documented defaults, sizes with units, and every bad value refused by its field', () => {
  assert.deepEqual(compileMatcherConfig({ dataDir: '/tmp/ph' }).limits, DEFAULT_LIMITS);
  const tuned = compileMatcherConfig({
    dataDir: '/tmp/ph',
    maxSubmitBytes: '2MiB',
    maxJobsPerSubmission: 50,
    maxFrameBytes: '512KiB',
    maxFramesPerSec: 20,
    maxSandboxBytes: '1.5KiB',
    maxSandboxBytesPerVo: 'none',
    maxConnectionsPerToken: 2,
  }).limits;
  assert.deepEqual(tuned, {
    maxSubmitBytes: 2 * 1024 ** 2,
    maxJobsPerSubmission: 50,
    maxFrameBytes: 512 * 1024,
    framesPerSec: 20,
    frameBurst: 40,
    maxSandboxBytes: 1536,
    maxSandboxBytesPerVo: null,
    maxConnectionsPerToken: 2,
  });
  const refusals: [Record<string, unknown>, string][] = [
    [{ maxSubmitBytes: 'lots' }, 'maxSubmitBytes'],
    [{ maxSubmitBytes: '-1MiB' }, 'maxSubmitBytes'],
    [{ maxJobsPerSubmission: 0 }, 'maxJobsPerSubmission'],
    [{ maxJobsPerSubmission: Number.NaN }, 'maxJobsPerSubmission'],
    [{ maxFrameBytes: '64KiB' }, 'maxFrameBytes'],
    [{ maxFramesPerSec: 2.5 }, 'maxFramesPerSec'],
    [{ maxSandboxBytes: '10PB' }, 'maxSandboxBytes'],
    [{ maxSandboxBytesPerVo: '12 parsecs' }, 'maxSandboxBytesPerVo'],
    [{ maxConnectionsPerToken: -3 }, 'maxConnectionsPerToken'],
  ];
  for (const [raw, field] of refusals) {
    assert.throws(() => compileMatcherConfig({ dataDir: '/tmp/ph', ...raw }), refusedFor(field), field);
  }
});

test('byte sizes: plain bytes and binary units, nothing guessed', () => {
  assert.equal(parseByteSize('1048576'), 1024 ** 2);
  assert.equal(parseByteSize('64MiB'), 64 * 1024 ** 2);
  assert.equal(parseByteSize('64mb'), 64 * 1024 ** 2);
  assert.equal(parseByteSize(' 2 GiB '), 2 * 1024 ** 3);
  assert.equal(parseByteSize('0.5KiB'), 512);
  for (const bad of ['', 'MiB', '1.5', '-1', '1e6', '3 PB', '1,000']) assert.equal(parseByteSize(bad), null, bad);
  assert.equal(formatByteSize(100 * 1024 ** 2), '100 MiB');
  assert.equal(formatByteSize(1000), '1000 bytes');
});
