/** Every requirement rule with a passing and a failing case, explain's reasons, and fits ⇔ explain. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseJobDescription, type JobDescriptionInput } from '../../shared/job/description.ts';
import type { OfferResources } from '../../shared/protocol/messages.ts';
import {
  checkRequirements,
  fits,
  grant,
  viewOffer,
  type OfferView,
  type RequirementName,
} from '../../matcher/matching/fit.ts';
import { taskQueueRequirements, type TaskQueueRequirements } from '../../matcher/matching/task-queue-key.ts';

const req = (requirements: JobDescriptionInput['requirements'] = {}, jobType?: string): TaskQueueRequirements =>
  taskQueueRequirements(parseJobDescription({ executable: 'x', requirements, ...(jobType && { jobType }) }));

const offer = (resources: Partial<OfferResources> = {}, where: { site?: string; ce?: string | null } = {}): OfferView =>
  viewOffer({
    vo: 'vo',
    site: where.site ?? 'Site.A',
    ce: where.ce === undefined ? 'ce-1' : where.ce,
    queue: 'q',
    resources: { cores: 4, memoryMB: 8000, wallTimeSec: 86_400, tags: [], ...resources },
  });

function verdict(r: TaskQueueRequirements, o: OfferView, rule: RequirementName): { pass: boolean; reason: string } {
  const check = checkRequirements(r, o).find((c) => c.requirement === rule);
  assert.ok(check, `rule ${rule} is explained`);
  assert.equal(
    fits(r, o),
    checkRequirements(r, o).every((c) => c.pass),
    'fits agrees with explain',
  );
  return check;
}

const H100 = { id: '0', model: 'NVIDIA H100 80GB HBM3', memoryMB: 81_559 };
const T4 = { id: '1', model: 'Tesla T4', memoryMB: 15_360 };

describe('requirement rules (pass and fail each)', () => {
  const cases: {
    rule: RequirementName;
    requirements: JobDescriptionInput['requirements'];
    pass: Partial<OfferResources>;
    fail: Partial<OfferResources>;
    reason: RegExp;
    where?: { pass?: { site?: string; ce?: string | null }; fail?: { site?: string; ce?: string | null } };
  }[] = [
    {
      rule: 'cores',
      requirements: { cores: { min: 4, max: 8 } },
      pass: { cores: 4 },
      fail: { cores: 3 },
      reason: /at least 4 core/,
    },
    {
      rule: 'wholeNode',
      requirements: { wholeNode: true },
      pass: { wholeNode: true },
      fail: { wholeNode: false },
      reason: /whole node/,
    },
    {
      rule: 'memory',
      requirements: { memoryMB: 1000, memoryPerCoreMB: 2000, cores: { min: 2 } },
      pass: { memoryMB: 5000 },
      fail: { memoryMB: 4999 },
      reason: /needs 5000 MB for 2 core/,
    },
    {
      rule: 'gpus',
      requirements: { gpus: { min: 1, models: ['h100'] } },
      pass: { gpus: [T4, H100] },
      fail: { gpus: [T4] },
      reason: /model h100/,
    },
    {
      rule: 'gpus',
      requirements: { gpus: { min: 1, minMemoryMB: 40_000 } },
      pass: { gpus: [H100] },
      fail: { gpus: [T4] },
      reason: /≥ 40000 MB/,
    },
    {
      rule: 'wallTime',
      requirements: { wallTimeSec: 3000 },
      pass: { wallTimeSec: 3600 },
      fail: { wallTimeSec: 3599 },
      reason: /needs 3600 s/,
    },
    {
      rule: 'cpuWork',
      requirements: { cpuWork: 36_000, cores: { min: 2 } },
      pass: { cpuPower: 10, wallTimeSec: 1800 },
      fail: { cpuPower: 10, wallTimeSec: 1799 },
      reason: /1800 s at power 10 on 2 core/,
    },
    {
      rule: 'cpuWork',
      requirements: { cpuWork: 100 },
      pass: { cpuPower: 1 },
      fail: { cpuPower: null },
      reason: /did not report its CPU power/,
    },
    {
      rule: 'platform',
      requirements: { platform: 'x86_64-v2' },
      pass: { platform: 'x86_64-v3' },
      fail: { platform: 'x86_64-v1' },
      reason: /x86_64-v2 or a higher level/,
    },
    {
      rule: 'platform',
      requirements: { platform: 'x86_64-v2' },
      pass: { platform: 'x86_64-v2' },
      fail: { platform: 'aarch64-v4' },
      reason: /offer is aarch64-v4/,
    },
    {
      rule: 'disk',
      requirements: { diskMB: 10_000 },
      pass: { diskMB: 10_000 },
      fail: { diskMB: 9_999 },
      reason: /10000 MB of disk/,
    },
    {
      rule: 'sites',
      requirements: { sites: ['Site.A', 'Site.B'] },
      pass: {},
      fail: {},
      reason: /allowed at Site.A, Site.B; offer is at Site.C/,
      where: { fail: { site: 'Site.C' } },
    },
    {
      rule: 'bannedSites',
      requirements: { bannedSites: ['Site.A'] },
      pass: {},
      fail: {},
      reason: /banned at Site.A/,
      where: { pass: { site: 'Site.B' } },
    },
    {
      rule: 'ces',
      requirements: { ces: ['ce-1'] },
      pass: {},
      fail: {},
      reason: /allowed on ce-1; offer is on ce-2/,
      where: { fail: { ce: 'ce-2' } },
    },
    {
      rule: 'tags',
      requirements: { tags: ['cvmfs:lhcb', 'os:el9'] },
      pass: { tags: ['os:el9', 'cvmfs:lhcb', 'x'] },
      fail: { tags: ['os:el9'] },
      reason: /lacks cvmfs:lhcb/,
    },
    {
      rule: 'requiredTags',
      requirements: { tags: ['gpu'] },
      pass: { tags: ['gpu'], requiredTags: ['gpu'] },
      fail: { tags: ['gpu'], requiredTags: ['gpu', 'mp'] },
      reason: /only takes jobs tagged mp/,
    },
  ];
  for (const c of cases) {
    it(`${c.rule}: ${JSON.stringify(c.requirements)}`, () => {
      const r = req(c.requirements);
      assert.equal(verdict(r, offer(c.pass, c.where?.pass), c.rule).pass, true);
      const failed = verdict(r, offer(c.fail, c.where?.fail), c.rule);
      assert.equal(failed.pass, false);
      assert.match(failed.reason, c.reason);
    });
  }

  it('an offer with required tags refuses an untagged job', () => {
    assert.equal(fits(req(), offer({ requiredTags: ['gpu'], tags: ['gpu'] })), false);
  });
});

describe('grants', () => {
  it('gives up to cores.max, fewer when memory per core does not fit, never below cores.min', () => {
    assert.equal(grant(req({ cores: { min: 1, max: 8 } }), offer({ cores: 6 })).cores, 6);
    assert.equal(
      grant(req({ cores: { min: 1, max: 8 }, memoryPerCoreMB: 2000 }), offer({ cores: 6, memoryMB: 7000 })).cores,
      3,
    );
    const g = grant(req({ cores: { min: 2, max: 2 }, memoryPerCoreMB: 1000, memoryMB: 500 }), offer());
    assert.deepEqual([g.cores, g.memoryMB], [2, 2500]);
  });

  it('gives a whole-node job every core and GPUs up to gpus.max among the fitting ones', () => {
    assert.equal(grant(req({ wholeNode: true }), offer({ cores: 16, wholeNode: true })).cores, 16);
    const g = grant(
      req({ gpus: { min: 1, max: 2, models: ['h100'] } }),
      offer({ gpus: [T4, H100, { ...H100, id: '2' }, { ...H100, id: '3' }] }),
    );
    assert.deepEqual(g.gpuIds, ['0', '2']);
  });
});

describe('properties', () => {
  // Each requirement is present one time in four, so that fitting pairs are common enough to test grants.
  const sometimes = <T>(arb: fc.Arbitrary<T>) =>
    fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: arb, weight: 1 });
  const requirementsArb = fc
    .record({
      cores: sometimes(
        fc
          .integer({ min: 1, max: 8 })
          .chain((min) => fc.record({ min: fc.constant(min), max: fc.integer({ min, max: 16 }) })),
      ),
      memoryMB: sometimes(fc.integer({ min: 1, max: 16_000 })),
      memoryPerCoreMB: sometimes(fc.integer({ min: 1, max: 4000 })),
      gpus: sometimes(
        fc.record({
          min: fc.integer({ min: 1, max: 2 }),
          models: fc.subarray(['h100', 't4']),
          minMemoryMB: fc.integer({ min: 1, max: 90_000 }),
        }),
      ),
      wallTimeSec: sometimes(fc.integer({ min: 1, max: 200_000 })),
      cpuWork: sometimes(fc.integer({ min: 1, max: 10_000_000 })),
      platform: sometimes(fc.constantFrom('x86_64', 'x86_64-v2', 'x86_64-v3', 'aarch64')),
      diskMB: sometimes(fc.integer({ min: 1, max: 100_000 })),
      sites: sometimes(fc.subarray(['S1', 'S2', 'S3'])),
      ces: sometimes(fc.subarray(['c1', 'c2'])),
      tags: sometimes(fc.subarray(['a', 'b', 'gpu'])),
    })
    .map((r) => Object.fromEntries(Object.entries(r).filter(([, value]) => value !== undefined)));
  const offerArb = fc.record({
    cores: fc.integer({ min: 0, max: 32 }),
    memoryMB: fc.integer({ min: 0, max: 64_000 }),
    wallTimeSec: fc.option(fc.integer({ min: 0, max: 300_000 }), { nil: null }),
    tags: fc.subarray(['a', 'b', 'gpu', 'c']),
    requiredTags: fc.oneof(
      { arbitrary: fc.constant<string[]>([]), weight: 4 },
      { arbitrary: fc.constant<string[]>(['gpu']), weight: 1 },
    ),
    gpus: fc.subarray([H100, T4, { ...H100, id: '2' }]),
    diskMB: fc.option(fc.integer({ min: 0, max: 200_000 }), { nil: null }),
    cpuPower: fc.option(fc.double({ min: 0.5, max: 50, noNaN: true }), { nil: null }),
    platform: fc.option(fc.constantFrom('x86_64-v1', 'x86_64-v3', 'x86_64-v4', 'aarch64-v1'), { nil: null }),
    wholeNode: fc.boolean(),
    site: fc.constantFrom('S1', 'S2', 'S3'),
    ce: fc.constantFrom('c1', 'c2'),
  });

  it('fits agrees with every explained rule, and a grant never exceeds the offer nor violates the job', () => {
    let fitted = 0;
    fc.assert(
      fc.property(requirementsArb, offerArb, (requirements, o) => {
        const r = req(requirements as JobDescriptionInput['requirements']);
        const { site, ce, ...resources } = o;
        const view = offer(resources, { site, ce });
        const checks = checkRequirements(r, view);
        assert.equal(
          fits(r, view),
          checks.every((c) => c.pass),
        );
        if (!fits(r, view)) return;
        fitted += 1;
        const g = grant(r, view);
        assert.ok(g.cores >= r.coresMin && g.cores <= view.cores);
        assert.ok(r.wholeNode || g.cores <= r.coresMax);
        assert.ok(g.memoryMB <= view.memoryMB);
        assert.ok(g.gpuIds.length >= r.gpusMin && g.gpuIds.length <= Math.max(r.gpusMax, 0));
        assert.equal(new Set(g.gpuIds).size, g.gpuIds.length);
      }),
      { numRuns: 2000 },
    );
    assert.ok(fitted > 200, `the generators produce fitting pairs too (${fitted} of 2000)`);
  });
});
