/** Explain and the site mask over REST, against a real matcher and a parked pilot. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

describe('explain and site mask', () => {
  let m: TestMatcher;
  let pilot: RawPilot;
  let jobId: number;
  before(async () => {
    m = await startTestMatcher();
    pilot = await RawPilot.connect(m.url, await m.pilotToken('local'), { stamp: 'small-pilot', site: 'Site.A' });
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources(2) });
    await pilot.next('parked');
    const submitted = await m.api('POST', '/api/jobs', {
      json: { executable: 'x', requirements: { cores: { min: 4 }, tags: ['cvmfs:lhcb'], wallTimeSec: 3000 } },
    });
    jobId = submitted.body.jobIds[0];
  });
  after(async () => {
    await pilot.close();
    await m.close();
  });

  it("explains a waiting job against the pilots' parked offers, rule by rule", async () => {
    const { status, body } = await m.api('POST', `/api/jobs/${jobId}/explain`);
    assert.equal(status, 200);
    assert.equal(body.status, 'Waiting');
    assert.equal(body.verdicts.length, 1);
    const [verdict] = body.verdicts;
    assert.deepEqual(verdict.target, { kind: 'offer', pilotId: 'small-pilot', site: 'Site.A', ce: 'ce1', queue: 'q1' });
    assert.equal(verdict.matches, false);
    const failed = verdict.checks
      .filter((c: { pass: boolean }) => !c.pass)
      .map((c: { requirement: string; reason: string }) => [c.requirement, c.reason]);
    assert.deepEqual(failed, [
      ['cores', 'needs at least 4 core(s), offer has 2'],
      ['tags', 'offer lacks cvmfs:lhcb'],
    ]);
  });

  it('explains against a queue described by the caller', async () => {
    const target = (cores: number, tags: string[]) => ({
      site: 'Site.Q',
      ce: 'ce.q',
      queue: 'long',
      resources: { cores, memoryMB: 8000, wallTimeSec: 7200, tags },
    });
    const { body } = await m.api('POST', `/api/jobs/${jobId}/explain`, {
      json: { targets: [target(8, ['cvmfs:lhcb']), target(8, [])] },
    });
    assert.deepEqual(
      body.verdicts.map((v: { matches: boolean }) => v.matches),
      [true, false],
    );
    assert.equal(body.verdicts[0].target.kind, 'resource');
    const bad = await m.api('POST', `/api/jobs/${jobId}/explain`, {
      json: { targets: [{ site: 'S', resources: { cores: 'many' } }] },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'targets.0.resources.cores');
  });

  it('a banned site gets only Test jobs, and explain says so; users cannot change the mask', async () => {
    const user = await m.userToken('alice', 'local');
    const refused = await m.api('POST', '/api/sites/Site.Q/ban', { token: user, json: { reason: 'no' } });
    assert.equal(refused.status, 403);
    const banned = await m.api('POST', '/api/sites/Site.Q/ban', { json: { reason: 'black hole' } });
    assert.deepEqual(banned.body, { site: 'Site.Q', status: 'Banned', reason: 'black hole' });
    const target = { site: 'Site.Q', resources: { cores: 8, memoryMB: 8000, wallTimeSec: 7200, tags: ['cvmfs:lhcb'] } };
    const { body } = await m.api('POST', `/api/jobs/${jobId}/explain`, { json: { targets: [target] } });
    const mask = body.verdicts[0].checks.find((c: { requirement: string }) => c.requirement === 'siteMask');
    assert.deepEqual(
      [body.verdicts[0].matches, mask.pass, mask.reason],
      [false, false, 'site Site.Q is banned: only Test jobs go there'],
    );
    const sites = await m.api('GET', '/api/sites', { token: user });
    assert.deepEqual(
      sites.body.sites.map((s: { site: string; status: string }) => [s.site, s.status]),
      [['Site.Q', 'Banned']],
    );
    await m.api('POST', '/api/sites/Site.Q/allow', { json: { reason: 'fixed' } });
    const after = await m.api('POST', `/api/jobs/${jobId}/explain`, { json: { targets: [target] } });
    assert.equal(after.body.verdicts[0].matches, true);
  });

  it("another user's job cannot be explained to you", async () => {
    const stranger = await m.userToken('mallory', 'local');
    const response = await m.api('POST', `/api/jobs/${jobId}/explain`, { token: stranger });
    assert.equal(response.status, 403);
  });
});
