/** The submission decision: every rule on its own, and properties over random inputs. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decideQueue, type VoDemand } from '../../site-director/decide.ts';

const caps = { maxWaitingPilots: 10, maxRunningPilots: 100, maxPilotsPerCycle: 5 };
const demand = (pilotsNeeded: number | null, waiting = 0, running = 0, unknown = 0, vo = 'vo-a'): VoDemand => ({
  vo,
  pilotsNeeded,
  waitingJobs: pilotsNeeded === null ? null : pilotsNeeded * 2,
  pilots: { waiting, running, unknown },
});

it('decide - no pilots when no job fits the queue', () => {
  const [decision] = decideQueue(caps, [demand(0)], []);
  assert.equal(decision?.submit, 0);
  assert.match(decision?.reason ?? '', /no waiting job fits/);
});

it('decide - pilots already waiting (and unknown ones) count against the demand; running ones do not', () => {
  assert.equal(decideQueue(caps, [demand(4, 1, 50, 1)], [])[0]?.submit, 2);
  assert.equal(decideQueue(caps, [demand(4, 4)], [])[0]?.submit, 0);
});

it('decide - each cap limits, and the reason names the one that did', () => {
  const perCycle = decideQueue(caps, [demand(50)], [])[0];
  assert.equal(perCycle?.submit, 5);
  assert.match(perCycle?.reason ?? '', /maxPilotsPerCycle 5/);
  const waitingCap = decideQueue({ ...caps, maxPilotsPerCycle: 100 }, [demand(50, 7)], [])[0];
  assert.equal(waitingCap?.submit, 3);
  assert.match(waitingCap?.reason ?? '', /maxWaitingPilots 10 − 7 not started/);
  const totalCap = decideQueue({ ...caps, maxPilotsPerCycle: 100, maxWaitingPilots: 100 }, [demand(50, 2, 97)], [])[0];
  assert.equal(totalCap?.submit, 1);
  assert.match(totalCap?.reason ?? '', /maxRunningPilots 100 − 99 at the queue/);
});

it('decide - a throttle stops the queue whatever the demand, and says why', () => {
  const [decision] = decideQueue(caps, [demand(50)], ['CE backoff after 3 error(s)']);
  assert.equal(decision?.submit, 0);
  assert.match(decision?.reason ?? '', /throttled: CE backoff/);
});

it('decide - nothing is submitted blind when the demand is unknown', () => {
  assert.equal(decideQueue(caps, [demand(null)], [])[0]?.submit, 0);
});

it('decide - VOs of one queue share its caps, in order', () => {
  const decisions = decideQueue(caps, [demand(4, 0, 0, 0, 'vo-a'), demand(4, 0, 0, 0, 'vo-b')], []);
  assert.deepEqual(
    decisions.map((d) => d.submit),
    [4, 1],
  );
});

const arbitraryDemand = fc.record({
  vo: fc.constantFrom('a', 'b', 'c'),
  pilotsNeeded: fc.option(fc.nat(500), { nil: null }),
  waitingJobs: fc.constant(null),
  pilots: fc.record({ waiting: fc.nat(60), running: fc.nat(200), unknown: fc.nat(10) }),
});
const arbitraryCaps = fc.record({
  maxWaitingPilots: fc.nat(80),
  maxRunningPilots: fc.nat(300),
  maxPilotsPerCycle: fc.nat(50),
});

it('decide - property: never above a cap, never above the demand, never negative', () => {
  fc.assert(
    fc.property(arbitraryCaps, fc.array(arbitraryDemand, { minLength: 1, maxLength: 3 }), (c, demands) => {
      const decisions = decideQueue(c, demands, []);
      const total = decisions.reduce((sum, d) => sum + d.submit, 0);
      const notStarted = demands.reduce((sum, d) => sum + d.pilots.waiting + d.pilots.unknown, 0);
      const present = demands.reduce((sum, d) => sum + d.pilots.waiting + d.pilots.unknown + d.pilots.running, 0);
      assert.ok(decisions.every((d) => d.submit >= 0));
      assert.ok(total <= c.maxPilotsPerCycle);
      assert.ok(total === 0 || notStarted + total <= c.maxWaitingPilots);
      assert.ok(total === 0 || present + total <= c.maxRunningPilots);
      demands.forEach((d, i) => {
        const wanted = d.pilotsNeeded === null ? 0 : Math.max(0, d.pilotsNeeded - d.pilots.waiting - d.pilots.unknown);
        assert.ok((decisions[i]?.submit ?? 0) <= wanted);
      });
    }),
    { numRuns: 2000 },
  );
});

it('decide - property: with room under every cap, the demand is met exactly', () => {
  fc.assert(
    fc.property(fc.nat(40), fc.nat(20), (needed, waiting) => {
      const [decision] = decideQueue(
        { maxWaitingPilots: 1000, maxRunningPilots: 1000, maxPilotsPerCycle: 1000 },
        [demand(needed, waiting)],
        [],
      );
      assert.equal(decision?.submit, Math.max(0, needed - waiting));
    }),
  );
});

it('decide - property: any throttle means zero', () => {
  fc.assert(
    fc.property(
      arbitraryCaps,
      fc.array(arbitraryDemand, { minLength: 1, maxLength: 3 }),
      fc.string({ minLength: 1 }),
      (c, demands, why) => {
        assert.ok(decideQueue(c, demands, [why]).every((d) => d.submit === 0));
      },
    ),
  );
});
