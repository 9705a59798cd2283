/** Ranking and matching against a real SQLite store: shares, owners, job types, mask, limits, fit. */
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { OfferResources } from '../../shared/protocol/messages.ts';
import type { Offer } from '../../matcher/matching/fit.ts';
import { matchRig, type MatchRig } from '../helpers/match-bench.ts';

const own = (group: string, owner: string) => ({ vo: 'vo', group, owner });
const offerAt = (site: string, resources: Partial<OfferResources> = {}): Offer => ({
  vo: 'vo',
  site,
  ce: 'ce',
  queue: 'q',
  resources: { cores: 1, memoryMB: 4000, wallTimeSec: null, tags: [], ...resources },
});
const many = (n: number, job: object = {}) => Array.from({ length: n }, () => job);

// Every case runs twice: offers ranked by reading every fitting TQ, and from per-shape buckets.
for (const [ranking, bucketsFromTqs] of [
  ['linear', Infinity],
  ['buckets', 0],
] as const) {
  describe(`match service (${ranking} ranking)`, () => {
    const rigWith = (policy: Parameters<typeof matchRig>[0] = {}, clockMs?: () => number) =>
      matchRig(policy, clockMs, { bucketsFromTqs });
    let rig: MatchRig;
    afterEach(() => rig?.close());

    async function drain(offer: Offer, count: number) {
      const matched = [];
      for (let i = 0; i < count; i += 1) {
        const match = await rig.service.findMatch(offer, `p${i}`);
        if (!match) break;
        matched.push(match.job);
      }
      return matched;
    }

    it('group shares converge to their configured ratio', async () => {
      rig = await rigWith({ groups: { prod: { share: 3000 }, user: { share: 1000 } } });
      await rig.submit(own('prod', 'p'), many(1500));
      await rig.submit(own('user', 'u'), many(1500));
      const jobs = await drain(offerAt('S'), 2000);
      const prod = jobs.filter((j) => j.group === 'prod').length;
      assert.equal(jobs.length, 2000);
      assert.ok(Math.abs(prod / 2000 - 0.75) < 0.01, `prod got ${prod} of 2000 matches, expected 75%`);
    });

    it('an owner with 80% of the waiting jobs does not starve the others of its group', async () => {
      rig = await rigWith();
      await rig.submit(own('users', 'bulk'), many(800));
      await rig.submit(own('users', 'small1'), many(100));
      await rig.submit(own('users', 'small2'), many(100));
      const first = await drain(offerAt('S'), 300);
      const byOwner = (owner: string) => first.filter((j) => j.owner === owner).length;
      assert.deepEqual(
        [byOwner('bulk'), byOwner('small1'), byOwner('small2')],
        [100, 100, 100],
        'equal split while all have jobs',
      );
      const rest = await drain(offerAt('S'), 1000);
      assert.equal(rest.length, 700, 'then the bulk owner gets the rest');
    });

    it('a group with JobSharing is one entity: FIFO across its owners', async () => {
      rig = await rigWith({ groups: { team: { jobSharing: true } } });
      const a = await rig.submit(own('team', 'a'), many(3));
      const b = await rig.submit(own('team', 'b'), many(3));
      const jobs = await drain(offerAt('S'), 6);
      assert.deepEqual(
        jobs.map((j) => j.id),
        [...a, ...b],
      );
      assert.equal((await rig.store.listTaskQueues({})).length, 0);
    });

    it('job-type ranks are strict, user priority orders inside an owner, FIFO breaks ties', async () => {
      rig = await rigWith({ jobTypeRanks: { Urgent: 10 } });
      const [low, high] = await rig.submit(own('g', 'o'), [{ priority: 1 }, { priority: 7 }]);
      const [urgent] = await rig.submit(own('g', 'o'), [{ jobType: 'Urgent' }]);
      const jobs = await drain(offerAt('S'), 3);
      assert.deepEqual(
        jobs.map((j) => j.id),
        [urgent, high, low],
      );
    });

    it('a banned site receives only Test jobs; allowing it again serves the rest', async () => {
      rig = await rigWith();
      const [user] = await rig.submit(own('g', 'o'), [{}]);
      const [test] = await rig.submit(own('g', 'o'), [{ jobType: 'Test' }]);
      await rig.service.setSiteStatus({
        site: 'Bad',
        status: 'Banned',
        reason: 'black hole',
        changedBy: 'admin',
        changedAt: new Date().toISOString(),
      });
      const atBanned = await drain(offerAt('Bad'), 5);
      assert.deepEqual(
        atBanned.map((j) => j.id),
        [test],
      );
      await rig.service.setSiteStatus({
        site: 'Bad',
        status: 'Active',
        reason: 'fixed',
        changedBy: 'admin',
        changedAt: new Date().toISOString(),
      });
      assert.equal((await rig.service.findMatch(offerAt('Bad'), 'p'))?.job.id, user);
    });

    it('offers of one shape reuse their placement checks, yet see a new TQ, a mask change and a TQ that emptied', async () => {
      rig = await rigWith();
      const shape = offerAt('Good', { tags: ['os:a', 'cvmfs'] });
      const sameShapeOtherOrder = offerAt('Good', { tags: ['cvmfs', 'os:a'] });
      assert.equal(await rig.service.findMatch(shape, 'p'), null, 'nothing waiting yet');
      // A TQ created after the shape was first seen is found by the next offer of that shape.
      const [tagged] = await rig.submit(own('g', 'o'), [{ requirements: { tags: ['os:a'] } }]);
      assert.equal((await rig.service.findMatch(sameShapeOtherOrder, 'p'))?.job.id, tagged);
      // The TQ is now empty: it is no candidate, and a new job of it makes it one again.
      assert.deepEqual(rig.service.candidates(shape), []);
      const [again] = await rig.submit(own('g', 'o'), [{ requirements: { tags: ['os:a'] } }]);
      assert.deepEqual(
        rig.service.candidates(shape).map((tq) => tq.id),
        [(await rig.store.getJob(again as number))?.taskQueueId],
      );
      // Banning the site drops the cached User TQ; allowing it again brings it back.
      const change = (status: 'Banned' | 'Active') =>
        rig.service.setSiteStatus({
          site: 'Good',
          status,
          reason: 'test',
          changedBy: 'admin',
          changedAt: new Date().toISOString(),
        });
      await change('Banned');
      assert.equal(await rig.service.findMatch(shape, 'p'), null);
      await change('Active');
      assert.equal((await rig.service.findMatch(shape, 'p'))?.job.id, again);
      // A different shape (a tag missing) never reuses the first one's list.
      await rig.submit(own('g', 'o'), [{ requirements: { tags: ['os:a'] } }]);
      assert.equal(await rig.service.findMatch(offerAt('Good', { tags: ['cvmfs'] }), 'p'), null);
    });

    it('per-site running limits per job type hold, and other job types still match', async () => {
      rig = await rigWith({ runningLimits: [{ site: 'S', jobType: 'MCSimulation', maxRunning: 2 }] });
      await rig.submit(own('g', 'o'), many(5, { jobType: 'MCSimulation' }));
      const [user] = await rig.submit(own('g', 'o'), [{ jobType: 'User', priority: 0 }]);
      const jobs = await drain(offerAt('S'), 10);
      assert.deepEqual(
        jobs.map((j) => j.jobType),
        ['MCSimulation', 'MCSimulation', 'User'],
      );
      assert.equal(jobs[2]?.id, user);
      assert.equal((await drain(offerAt('Other'), 10)).length, 3, 'another site is not limited');
    });

    it('a matching delay spaces job starts of a type at a site', async () => {
      let now = Date.parse('2026-01-01T00:00:00Z');
      rig = await rigWith({ matchingDelays: [{ site: 'S', jobType: '*', delaySec: 30 }] }, () => now);
      await rig.submit(own('g', 'o'), many(3));
      assert.ok(await rig.service.findMatch(offerAt('S'), 'p1'));
      assert.equal(await rig.service.findMatch(offerAt('S'), 'p2'), null);
      now += 31_000;
      assert.ok(await rig.service.findMatch(offerAt('S'), 'p3'));
    });

    it('a multi-core offer prefers the job that fills it best, and never takes one that does not fit', async () => {
      rig = await rigWith();
      const [one, four, eight] = await rig.submit(own('g', 'o'), [
        { requirements: { cores: { min: 1 } } },
        { requirements: { cores: { min: 4 } } },
        { requirements: { cores: { min: 8 } } },
      ]);
      const first = await rig.service.findMatch(offerAt('S', { cores: 4 }), 'p');
      assert.equal(first?.job.id, four);
      assert.equal(first?.grant.cores, 4);
      const second = await rig.service.findMatch(offerAt('S', { cores: 4 }), 'p');
      assert.equal(second?.job.id, one);
      assert.equal(await rig.service.findMatch(offerAt('S', { cores: 4 }), 'p'), null);
      assert.equal((await rig.service.findMatch(offerAt('S', { cores: 8 }), 'p'))?.job.id, eight);
    });

    it('a pass over parked offers that ends at once does not block later wake-ups', async () => {
      rig = await rigWith();
      await rig.service.wake(); // nothing parked: the pass finishes synchronously
      let served = 0;
      rig.service.park({ pilotId: 'p', offerId: 'o', offer: offerAt('S'), serve: async () => void (served += 1) });
      await rig.submit(own('g', 'o'), [{}]);
      assert.equal(served, 1);
    });

    it('a submission wakes only the parked offers that one of its task queues fits', async () => {
      rig = await rigWith();
      const served: string[] = [];
      const park = (pilotId: string, offer: Offer) =>
        rig.service.park({ pilotId, offerId: `${pilotId}-o`, offer, serve: async () => void served.push(pilotId) });
      park('small', offerAt('S', { cores: 1 }));
      park('big', offerAt('S', { cores: 8 }));
      park('elsewhere', offerAt('T', { cores: 8 }));
      await rig.submit(own('g', 'o'), [{ requirements: { cores: { min: 4 }, sites: ['S'] } }]);
      assert.deepEqual(served, ['big']);
    });
  });
}
