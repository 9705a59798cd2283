/** Throttles with a moved clock: back off after failures, recover after them; missed pilots throttle a CE and release it. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Throttles } from '../../site-director/throttles.ts';

const options = {
  ceErrorBackoffMs: { initialMs: 60_000, maxMs: 600_000 },
  emptyPilots: { threshold: 3, initialMs: 300_000, maxMs: 3_600_000 },
  missedPilots: { windowMs: 3_600_000, max: 3 },
};

function setup() {
  const clock = {
    ms: Date.parse('2026-01-01T00:00:00Z'),
    nowMs() {
      return this.ms;
    },
  };
  return { clock, throttles: new Throttles(options, clock) };
}

it('throttles - CE errors back off with doubling delays up to the maximum; a success recovers at once', () => {
  const { clock, throttles } = setup();
  const delays: number[] = [];
  for (let i = 0; i < 6; i += 1) {
    throttles.ceFailed('s/ce', new Error(`boom ${i}`));
    delays.push((throttles.ceState('s/ce').backedOffUntilMs as number) - clock.ms);
  }
  assert.deepEqual(delays, [60_000, 120_000, 240_000, 480_000, 600_000, 600_000]);
  assert.match(throttles.activeFor('s/ce', 's/ce/q')[0] ?? '', /CE backoff after 6 error\(s\).*boom 5/);
  assert.deepEqual(throttles.activeFor('other/ce', 'other/ce/q'), [], 'other CEs are not held up');
  throttles.ceSucceeded('s/ce');
  assert.deepEqual(throttles.activeFor('s/ce', 's/ce/q'), []);
});

it('throttles - a CE backoff ends by itself when its time is over', () => {
  const { clock, throttles } = setup();
  throttles.ceFailed('s/ce', new Error('x'));
  clock.ms += 59_999;
  assert.equal(throttles.activeFor('s/ce', 's/ce/q').length, 1);
  clock.ms += 1;
  assert.deepEqual(throttles.activeFor('s/ce', 's/ce/q'), []);
});

it('throttles - empty pilots: the queue backs off after the threshold, longer each time; a useful pilot clears it', () => {
  const { clock, throttles } = setup();
  throttles.pilotEnded('s/ce', 's/ce/q', 'empty');
  throttles.pilotEnded('s/ce', 's/ce/q', 'empty');
  assert.deepEqual(throttles.activeFor('s/ce', 's/ce/q'), []);
  throttles.pilotEnded('s/ce', 's/ce/q', 'empty');
  assert.match(throttles.activeFor('s/ce', 's/ce/q')[0] ?? '', /matched nothing 3× in a row/);
  assert.deepEqual(throttles.activeFor('s/ce', 's/ce/other'), [], 'only that queue');
  clock.ms += 300_000;
  assert.deepEqual(throttles.activeFor('s/ce', 's/ce/q'), [], 'released after 300 s');
  for (let i = 0; i < 3; i += 1) throttles.pilotEnded('s/ce', 's/ce/q', 'empty');
  clock.ms += 300_000;
  assert.equal(throttles.activeFor('s/ce', 's/ce/q').length, 1, 'the second backoff lasts 600 s');
  throttles.pilotEnded('s/ce', 's/ce/q', 'useful');
  assert.deepEqual(throttles.activeFor('s/ce', 's/ce/q'), []);
});

it('throttles - missed pilots throttle the CE while max of them are in the window, and release it', () => {
  const { clock, throttles } = setup();
  throttles.pilotEnded('s/ce', 's/ce/q', 'missed');
  clock.ms += 1_000_000;
  throttles.pilotEnded('s/ce', 's/ce/q', 'missed');
  assert.deepEqual(throttles.activeFor('s/ce', 's/ce/q'), []);
  throttles.pilotEnded('s/ce', 's/ce/q2', 'missed');
  assert.match(throttles.activeFor('s/ce', 's/ce/q')[0] ?? '', /3 missed pilot\(s\) within 3600 s/);
  const state = throttles.ceState('s/ce');
  assert.equal(state.missedInWindow, 3);
  assert.equal(state.throttledUntilMs, Date.parse('2026-01-01T00:00:00Z') + 3_600_000);
  clock.ms = (state.throttledUntilMs as number) + 1;
  assert.deepEqual(throttles.activeFor('s/ce', 's/ce/q'), [], 'the first missed pilot left the window');
  assert.equal(throttles.ceState('s/ce').missedInWindow, 2);
});

it('throttles - property: the CE backoff never exceeds its maximum and always ends', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom('fail', 'ok', 'wait'), { maxLength: 60 }), (events) => {
      const { clock, throttles } = setup();
      for (const event of events) {
        if (event === 'fail') throttles.ceFailed('ce', new Error('x'));
        else if (event === 'ok') throttles.ceSucceeded('ce');
        else clock.ms += 30_000;
        const until = throttles.ceState('ce').backedOffUntilMs;
        assert.ok(until === null || until - clock.ms <= options.ceErrorBackoffMs.maxMs);
      }
      clock.ms += options.ceErrorBackoffMs.maxMs;
      assert.deepEqual(throttles.activeFor('ce', 'ce/q'), []);
    }),
  );
});
