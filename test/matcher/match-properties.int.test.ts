/** Property tests of matching over a real SQLite store (fast-check): random jobs, random offers. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { JobDescriptionInput } from '../../shared/job/description.ts';
import { fits, viewOffer, type Offer } from '../../matcher/matching/fit.ts';
import { taskQueueRequirements } from '../../matcher/matching/task-queue-key.ts';
import { matchRig } from '../helpers/match-bench.ts';

const SITES = ['S1', 'S2', 'S3'];
const ONE_CORE_OFFER: Offer = {
  vo: 'vo',
  site: 'S1',
  ce: null,
  queue: null,
  resources: { cores: 1, memoryMB: 1000, wallTimeSec: null, tags: [] },
};
const jobArb: fc.Arbitrary<Partial<JobDescriptionInput>> = fc.record({
  jobType: fc.constantFrom('User', 'MC'),
  priority: fc.integer({ min: 0, max: 3 }),
  requirements: fc.record(
    {
      cores: fc
        .integer({ min: 1, max: 4 })
        .chain((min) => fc.record({ min: fc.constant(min), max: fc.integer({ min, max: 6 }) })),
      memoryMB: fc.integer({ min: 500, max: 8000 }),
      wallTimeSec: fc.integer({ min: 60, max: 90_000 }),
      sites: fc.subarray(SITES, { maxLength: 2 }),
      bannedSites: fc.constant([] as string[]),
      tags: fc.subarray(['cvmfs', 'gpu']),
      platform: fc.constantFrom('x86_64', 'x86_64-v2', 'x86_64-v3'),
    },
    { requiredKeys: [] },
  ),
});
const ownerArb = fc.record({
  vo: fc.constant('vo'),
  group: fc.constantFrom('g1', 'g2'),
  owner: fc.constantFrom('a', 'b', 'c'),
});
const offerArb: fc.Arbitrary<Offer> = fc.record({
  vo: fc.constant('vo'),
  site: fc.constantFrom(...SITES),
  ce: fc.constant('ce'),
  queue: fc.constant('q'),
  resources: fc.record({
    cores: fc.integer({ min: 1, max: 8 }),
    memoryMB: fc.integer({ min: 0, max: 16_000 }),
    wallTimeSec: fc.option(fc.integer({ min: 0, max: 200_000 }), { nil: null }),
    tags: fc.subarray(['cvmfs', 'gpu']),
    platform: fc.constantFrom('x86_64-v1', 'x86_64-v2', 'x86_64-v4'),
  }),
});
const scenarioArb = fc.record({
  submissions: fc.array(fc.tuple(ownerArb, jobArb), { minLength: 1, maxLength: 40 }),
  offers: fc.array(offerArb, { minLength: 1, maxLength: 40 }),
});

// Every property holds whether offers are ranked by reading every fitting TQ or from per-shape buckets.
for (const [ranking, bucketsFromTqs] of [
  ['linear', Infinity],
  ['buckets', 0],
] as const) {
  it(`matching (${ranking} ranking) - a matched job never violates a requirement, and an offer left unmatched fits no waiting job`, async () => {
    let matches = 0;
    let misses = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb, async ({ submissions, offers }) => {
        const rig = await matchRig({}, undefined, { bucketsFromTqs });
        try {
          for (const [owner, job] of submissions) await rig.submit(owner, [job]);
          for (const [i, offer] of offers.entries()) {
            const match = await rig.service.findMatch(offer, `p${i}`);
            const view = viewOffer(offer);
            if (match) {
              matches += 1;
              const requirements = taskQueueRequirements(match.job.description);
              assert.ok(fits(requirements, view), `job ${match.job.id} fits the offer it was given`);
              assert.ok(
                view.wallTimeSec === null || view.wallTimeSec >= match.job.description.requirements.wallTimeSec,
              );
              assert.ok(match.grant.cores <= offer.resources.cores);
              assert.equal(match.job.status, 'Matched');
            } else {
              misses += 1;
              const waiting = await rig.store.searchJobs({
                statuses: ['Waiting'],
                sort: [{ column: 'id', direction: 'asc' }],
                page: 1,
                perPage: 1000,
              });
              for (const job of waiting.jobs) {
                assert.ok(
                  !fits(taskQueueRequirements(job.description), view),
                  `waiting job ${job.id} fits an offer that got nothing`,
                );
              }
            }
          }
        } finally {
          await rig.close();
        }
      }),
      { numRuns: 60 },
    );
    assert.ok(matches > 50 && misses > 50, `both outcomes were exercised (${matches} matches, ${misses} misses)`);
  });

  it(`matching (${ranking} ranking) - concurrent offers never claim one job twice`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 80 }), async (jobs, pilots) => {
        const rig = await matchRig({}, undefined, { bucketsFromTqs });
        try {
          await rig.submit(
            { vo: 'vo', group: 'g', owner: 'o' },
            Array.from({ length: jobs }, () => ({})),
          );
          const offer = ONE_CORE_OFFER;
          const results = await Promise.all(
            Array.from({ length: pilots }, (_, i) => rig.service.findMatch(offer, `p${i}`)),
          );
          const ids = results.filter((m) => m !== null).map((m) => m?.job.id);
          assert.equal(ids.length, Math.min(jobs, pilots));
          assert.equal(new Set(ids).size, ids.length);
        } finally {
          await rig.close();
        }
      }),
      { numRuns: 25 },
    );
  });

  it(`matching (${ranking} ranking) - over many matches each group receives its configured share`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 }), async (shareA, shareB) => {
        const rig = await matchRig({ groups: { a: { share: shareA * 100 }, b: { share: shareB * 100 } } }, undefined, {
          bucketsFromTqs,
        });
        try {
          await rig.submit(
            { vo: 'vo', group: 'a', owner: 'x' },
            Array.from({ length: 600 }, () => ({})),
          );
          await rig.submit(
            { vo: 'vo', group: 'b', owner: 'y' },
            Array.from({ length: 600 }, () => ({})),
          );
          const offer = ONE_CORE_OFFER;
          let toA = 0;
          const total = 500;
          for (let i = 0; i < total; i += 1) if ((await rig.service.findMatch(offer, 'p'))?.job.group === 'a') toA += 1;
          const expected = shareA / (shareA + shareB);
          assert.ok(
            Math.abs(toA / total - expected) <= 0.01,
            `group a got ${toA}/${total}, expected ${(expected * 100).toFixed(1)}%`,
          );
        } finally {
          await rig.close();
        }
      }),
      { numRuns: 12 },
    );
  });
}
