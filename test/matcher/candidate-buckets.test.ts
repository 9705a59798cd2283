/**
 * The per-shape buckets (candidate-buckets.ts) choose exactly the TQ the linear ranking chooses from
 * the same TQs, with the fair shares moved on the same way, while TQs are claimed from, emptied,
 * refilled, boosted, paused and added, and offers of several shapes come (seeded random sequences).
 * A second test shows the choice does not read every fitting TQ: after one change, a choice among
 * thousands of TQs recomputes only the bucket that changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TaskQueueIndex, type IndexedTaskQueue, type ScanList } from '../../matcher/matching/task-queue-index.ts';
import { CandidateBuckets } from '../../matcher/matching/candidate-buckets.ts';
import { chooseLinear, type RankingRules } from '../../matcher/matching/ranking.ts';
import { FairShare } from '../../matcher/matching/fair-share.ts';
import {
  fits,
  fitsPlacement,
  placementKey,
  viewOffer,
  type Offer,
  type OfferView,
} from '../../matcher/matching/fit.ts';
import type { TaskQueueView } from '../../matcher/store/job-store.ts';
import type { TaskQueueRequirements } from '../../matcher/matching/task-queue-key.ts';

function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const JOB_TYPES = ['User', 'MCSimulation', 'Merge', 'Test'];
const RANKS: Record<string, number> = { User: 0, MCSimulation: 0, Merge: 1, Test: 0 };
const SHARING = new Set(['g-shared']);
const GROUPS = ['g-a', 'g-b', 'g-shared'];

function rulesWith(): RankingRules & { charge(tq: IndexedTaskQueue, cores: number): void } {
  const groups = new Map<string, FairShare>();
  const owners = new Map<string, FairShare>();
  const share = (map: Map<string, FairShare>, key: string) => {
    let fairShare = map.get(key);
    if (!fairShare) map.set(key, (fairShare = new FairShare()));
    return fairShare;
  };
  return {
    jobTypeRank: (jobType) => RANKS[jobType] ?? 0,
    jobSharing: (group) => SHARING.has(group),
    groupShares: (vo) => share(groups, vo),
    ownerShares: (vo, group) => share(owners, `${vo}/${group}`),
    charge(tq, cores) {
      share(groups, tq.vo).charge(tq.group, tq.group === 'g-a' ? 2 : 1, cores);
      if (!SHARING.has(tq.group)) share(owners, `${tq.vo}/${tq.group}`).charge(tq.owner, 1, cores);
    },
  };
}

function requirements(random: () => number): TaskQueueRequirements {
  const coresMin = random() < 0.7 ? 1 : 1 + Math.floor(random() * 6);
  return {
    coresMin,
    coresMax: coresMin + Math.floor(random() * 4),
    wholeNode: false,
    memoryMB: null,
    memoryPerCoreMB: random() < 0.3 ? 1000 + 1000 * Math.floor(random() * 3) : null,
    gpusMin: 0,
    gpusMax: 0,
    gpuModels: [],
    gpuMinMemoryMB: null,
    wallTimeSec: 3600 * (1 + Math.floor(random() * 30)),
    cpuWork: null,
    platform: null,
    diskMB: null,
    sites: random() < 0.2 ? ['Site.B'] : [],
    bannedSites: [],
    ces: [],
    tags: random() < 0.3 ? ['cvmfs'] : [],
    jobType: JOB_TYPES[Math.floor(random() * JOB_TYPES.length)] as string,
  };
}

const OFFERS: Offer[] = [
  {
    vo: 'vo',
    site: 'Site.A',
    ce: 'ce1',
    queue: null,
    resources: { cores: 8, memoryMB: 16_000, wallTimeSec: 172_800, tags: ['cvmfs'] },
  },
  {
    vo: 'vo',
    site: 'Site.A',
    ce: 'ce1',
    queue: null,
    resources: { cores: 3, memoryMB: 5_000, wallTimeSec: 172_800, tags: ['cvmfs'] },
  },
  {
    vo: 'vo',
    site: 'Site.B',
    ce: 'ce2',
    queue: null,
    resources: { cores: 1, memoryMB: 2_000, wallTimeSec: 36_000, tags: [] },
  },
  {
    vo: 'vo',
    site: 'Site.B',
    ce: 'ce2',
    queue: null,
    resources: { cores: 4, memoryMB: 64_000, wallTimeSec: null, tags: ['cvmfs'] },
  },
];

for (const seed of [1, 2, 3, 4, 5, 6]) {
  test(`buckets and the linear ranking choose the same TQ at every step (seed ${seed})`, () => {
    const random = seededRandom(seed);
    const index = new TaskQueueIndex();
    const buckets = new CandidateBuckets();
    index.watch((tq) => buckets.changed(tq));
    const bucketRules = rulesWith();
    const placed = placedLists();
    const linearRules = rulesWith();
    let nextJob = 1;
    let nextTq = 1;
    const addTq = (): void => {
      const waiting = 1 + Math.floor(random() * 5);
      const view: TaskQueueView = {
        id: nextTq,
        vo: 'vo',
        group: GROUPS[Math.floor(random() * GROUPS.length)] as string,
        owner: `owner${Math.floor(random() * 6)}`,
        requirements: requirements(random),
        waitingJobs: waiting,
        topPriority: Math.floor(random() * 3),
        nextJobId: nextJob,
        createdAt: '2026-12-01T00:00:00.000Z',
        boost: 0,
        paused: null,
      };
      nextTq += 1;
      nextJob += waiting;
      index.upsert(view);
    };
    for (let i = 0; i < 150; i += 1) addTq();
    let matches = 0;
    for (let step = 0; step < 1500; step += 1) {
      const roll = random();
      const known = [...Array(nextTq - 1).keys()].map((i) => index.get(i + 1) as IndexedTaskQueue);
      const some = known[Math.floor(random() * known.length)] as IndexedTaskQueue;
      if (roll < 0.05) addTq();
      else if (roll < 0.08) index.applyStats({ id: some.id, waitingJobs: 2, topPriority: 1, nextJobId: nextJob++ });
      else if (roll < 0.1) index.upsert({ ...viewOf(some), boost: Math.floor(random() * 3) });
      else if (roll < 0.12) index.applyStats({ ...statsOf(some), paused: !some.paused });
      else {
        const offer = OFFERS[Math.floor(random() * OFFERS.length)] as Offer;
        const view = viewOffer(offer);
        const list = index.scanList('vo');
        const candidates = list.tqs.filter((tq) => tq.waitingJobs > 0 && !tq.paused && fits(tq.requirements, view));
        const shape = buckets.shapeFor(offer, view, placed.for(offer, view, list), bucketRules);
        const chosen = buckets.choose(shape, bucketRules);
        if (candidates.length === 0) {
          assert.equal(chosen, null, `step ${step}: nothing fits`);
          continue;
        }
        const expected = chooseLinear(candidates, view, linearRules);
        assert.equal(chosen?.id, expected.id, `step ${step}: the same TQ`);
        // The claim: one job fewer, a later (or, by priority, an earlier) next job, and the shares move.
        const left = expected.waitingJobs - 1;
        index.applyStats({
          id: expected.id,
          waitingJobs: left,
          topPriority: left > 0 ? Math.floor(random() * 3) : 0,
          nextJobId: left > 0 ? (expected.nextJobId as number) + 1 + Math.floor(random() * 3) : null,
        });
        bucketRules.charge(expected, 1);
        linearRules.charge(expected, 1);
        matches += 1;
      }
    }
    assert.ok(matches > 500, `${matches} matches compared`);
  });
}

test('after one claim, a choice among thousands of fitting TQs reads only the bucket that changed', () => {
  const index = new TaskQueueIndex();
  const buckets = new CandidateBuckets();
  index.watch((tq) => buckets.changed(tq));
  const rules = rulesWith();
  const random = seededRandom(9);
  for (let id = 1; id <= 5000; id += 1) {
    index.upsert({
      id,
      vo: 'vo',
      group: GROUPS[id % 2] as string,
      owner: `owner${id % 50}`,
      requirements: { ...requirements(random), coresMin: 1, memoryPerCoreMB: null, sites: [], tags: [] },
      waitingJobs: 3,
      topPriority: 0,
      nextJobId: id * 10,
      createdAt: '2026-12-01T00:00:00.000Z',
      boost: 0,
      paused: null,
    });
  }
  const offer = OFFERS[0] as Offer;
  const view = viewOffer(offer);
  // Every TQ here passes the placement checks: the scan list itself is the placed list.
  const shape = buckets.shapeFor(offer, view, index.scanList('vo').tqs, rules);
  assert.ok(buckets.choose(shape, rules));
  // Count what the next choice reads: every TQ's waitingJobs is a getter now.
  let reads = 0;
  for (const tq of index.scanList('vo').tqs) {
    let waiting = tq.waitingJobs;
    Object.defineProperty(tq, 'waitingJobs', {
      get: () => {
        reads += 1;
        return waiting;
      },
      set: (value: number) => {
        waiting = value;
      },
    });
  }
  const claimed = index.get(1234) as IndexedTaskQueue;
  index.applyStats({ id: claimed.id, waitingJobs: 2, topPriority: 0, nextJobId: 12_341 });
  reads = 0;
  assert.ok(buckets.choose(buckets.shapeFor(offer, view, index.scanList('vo').tqs, rules), rules));
  // One bucket (one owner's TQs of one job type: about 25 here) is read again, not the 5,000.
  assert.ok(reads > 0 && reads <= 60, `the choice read ${reads} TQs' waiting jobs`);
});

/**
 * Per placement key, the scan list's TQs that pass the placement checks, appended to as the list
 * grows and started afresh when it is rebuilt: what MatchService gives the buckets.
 */
function placedLists() {
  const lists = new Map<string, { epoch: number; seen: number; tqs: IndexedTaskQueue[] }>();
  return {
    for(offer: Offer, view: OfferView, list: ScanList): readonly IndexedTaskQueue[] {
      const key = placementKey(offer);
      let placed = lists.get(key);
      if (!placed || placed.epoch !== list.epoch) lists.set(key, (placed = { epoch: list.epoch, seen: 0, tqs: [] }));
      for (; placed.seen < list.tqs.length; placed.seen += 1) {
        const tq = list.tqs[placed.seen] as IndexedTaskQueue;
        if (fitsPlacement(tq.requirements, view)) placed.tqs.push(tq);
      }
      return placed.tqs;
    },
  };
}

function viewOf(tq: IndexedTaskQueue): TaskQueueView {
  return {
    ...tq,
    createdAt: '2026-12-01T00:00:00.000Z',
    paused: tq.paused ? { at: '2026-12-01T00:00:00.000Z', by: 'admin', reason: 'test' } : null,
  };
}

function statsOf(tq: IndexedTaskQueue) {
  return { id: tq.id, waitingJobs: tq.waitingJobs, topPriority: tq.topPriority, nextJobId: tq.nextJobId };
}
