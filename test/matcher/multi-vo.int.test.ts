/**
 * Two VOs sharing one matcher and one site name, under load: 8 pilots (stamp-bound tokens, 4 per
 * VO, at three sites) pull 1000 jobs concurrently while more are submitted. A pilot never receives a
 * job of another VO, nor one its bound site may not run; every job runs exactly once. Then the ways a
 * pilot of one VO could reach the other VO's jobs are tried and refused.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';
import type { MatchedJob } from '../../shared/protocol/messages.ts';

const JOBS_PER_VO = 500;

interface PilotSpec {
  vo: 'vo-a' | 'vo-b';
  site: string;
  stamp: string;
}

const SPECS: PilotSpec[] = [
  { vo: 'vo-a', site: 'Site.Shared', stamp: 'a-shared-1' },
  { vo: 'vo-a', site: 'Site.Shared', stamp: 'a-shared-2' },
  { vo: 'vo-a', site: 'Site.A', stamp: 'a-own-1' },
  { vo: 'vo-a', site: 'Site.A', stamp: 'a-own-2' },
  { vo: 'vo-b', site: 'Site.Shared', stamp: 'b-shared-1' },
  { vo: 'vo-b', site: 'Site.Shared', stamp: 'b-shared-2' },
  { vo: 'vo-b', site: 'Site.B', stamp: 'b-own-1' },
  { vo: 'vo-b', site: 'Site.B', stamp: 'b-own-2' },
];

describe('multi-VO isolation under load', () => {
  let m: TestMatcher;
  const received = new Map<string, MatchedJob[]>();

  before(async () => {
    m = await startTestMatcher();
  });
  after(() => m.close());

  it('pilots of VO A never receive VO B jobs (nor jobs their site may not run); every job runs once', async () => {
    const users = { 'vo-a': await m.userToken('alice', 'vo-a'), 'vo-b': await m.userToken('bob', 'vo-b') };
    // Each VO: a third of its jobs must run at its own site, the rest anywhere.
    const batch = (vo: 'vo-a' | 'vo-b', n: number) =>
      Array.from({ length: n }, (_, i) => ({
        executable: 'true',
        name: `${vo}-${i}`,
        ...(i % 3 === 0 && { requirements: { sites: [vo === 'vo-a' ? 'Site.A' : 'Site.B'] } }),
      }));
    const submit = async (vo: 'vo-a' | 'vo-b', n: number) => {
      const response = await m.api('POST', '/api/jobs', { token: users[vo], json: batch(vo, n) });
      assert.equal(response.status, 201);
      return response.body.jobIds as number[];
    };
    const firstHalf = [...(await submit('vo-a', JOBS_PER_VO / 2)), ...(await submit('vo-b', JOBS_PER_VO / 2))];

    let done = 0;
    const total = 2 * JOBS_PER_VO;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const pilots = await Promise.all(
      SPECS.map(async (spec) => ({
        spec,
        pilot: await RawPilot.connect(m.url, await m.pilotToken(spec.vo, spec.site, spec.stamp), spec),
      })),
    );
    const loops = pilots.map(async ({ spec, pilot }) => {
      const mine: MatchedJob[] = [];
      received.set(spec.stamp, mine);
      let ref = 0;
      while (done < total) {
        pilot.send({
          type: 'offer',
          offerId: `${spec.stamp}-${mine.length}`,
          matchSeq: mine.length,
          resources: resources(),
        });
        const next = await Promise.race([pilot.next('match'), finished.then(() => null)]);
        if (!next) break;
        mine.push(next.job);
        for (const status of ['Running', 'Done'] as const) {
          ref += 1;
          pilot.send({
            type: 'job.status',
            ref,
            jobId: next.job.jobId,
            attempt: next.job.attempt,
            at: new Date().toISOString(),
            status,
          });
          await pilot.next('ack');
        }
        done += 1;
        if (done === total) finish();
      }
    });
    // The second half arrives while pilots are busy or parked: pushed matches too.
    const secondHalf = [...(await submit('vo-b', JOBS_PER_VO / 2)), ...(await submit('vo-a', JOBS_PER_VO / 2))];
    await finished;
    await Promise.all(loops);
    await Promise.all(pilots.map(({ pilot }) => pilot.close()));

    const seen = new Set<number>();
    for (const { spec } of pilots) {
      for (const job of received.get(spec.stamp) ?? []) {
        assert.equal(job.vo, spec.vo, `pilot ${spec.stamp} (${spec.vo}) received job ${job.jobId} of ${job.vo}`);
        const sites = job.description.requirements.sites;
        assert.ok(sites.length === 0 || sites.includes(spec.site), `job ${job.jobId} may not run at ${spec.site}`);
        assert.ok(!seen.has(job.jobId), `job ${job.jobId} was matched twice`);
        seen.add(job.jobId);
      }
    }
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      [...firstHalf, ...secondHalf].sort((a, b) => a - b),
    );
    for (const { spec } of pilots) assert.ok((received.get(spec.stamp)?.length ?? 0) > 0, `${spec.stamp} got work`);
    const search = await m.api('POST', '/api/jobs/search', { json: { status: 'Done', perPage: 1000 } });
    assert.equal(search.body.total, total);
    for (const job of search.body.jobs as { vo: string; pilotId: string }[]) {
      assert.equal(SPECS.find((s) => s.stamp === job.pilotId)?.vo, job.vo, 'the recorded pilot is of the job VO');
    }
  });

  it("a VO B pilot cannot take over a VO A pilot's stamp, nor report on a VO A job", async () => {
    const [jobId] = (
      await m.api('POST', '/api/jobs', { token: await m.userToken('alice', 'vo-a'), json: { executable: 'true' } })
    ).body.jobIds;
    const holder = await RawPilot.connect(m.url, await m.pilotToken('vo-a', 'Site.A', 'a-holder'), {
      stamp: 'a-holder',
      site: 'Site.A',
    });
    holder.send({ type: 'offer', offerId: 'h', matchSeq: 0, resources: resources() });
    const { job } = await holder.next('match');
    assert.equal(job.jobId, jobId);

    // A generic VO B token says hello with the VO A pilot's stamp: refused.
    const hijacker = new RawPilot(m.url, await m.pilotToken('vo-b'));
    await new Promise((resolve) => hijacker.ws.once('open', resolve));
    hijacker.send({
      type: 'hello',
      pilotStamp: 'a-holder',
      pilotVersion: 't',
      site: 'Site.A',
      ce: null,
      queue: null,
      node: { hostname: 'h', cores: 1, memoryMB: 1, os: 'linux', arch: 'x', cpuModel: 'c' },
    });
    assert.equal((await hijacker.next('error')).code, 'FORBIDDEN');
    // A VO B pilot reports on the VO A job it does not hold: refused, nothing changes.
    const other = await RawPilot.connect(m.url, await m.pilotToken('vo-b'), { stamp: 'b-nosy' });
    other.send({ type: 'job.status', ref: 1, jobId, attempt: 1, at: new Date().toISOString(), status: 'Failed' });
    assert.equal((await other.next('error')).code, 'FORBIDDEN');
    assert.equal((await m.api('GET', `/api/jobs/${jobId}`)).body.status, 'Matched');
    await Promise.all([holder.close(), hijacker.close(), other.close()]);
  });

  it("explaining a job lists only its own VO's parked pilots", async () => {
    const parked = await Promise.all(
      (['vo-a', 'vo-b'] as const).map(async (vo) => {
        const pilot = await RawPilot.connect(m.url, await m.pilotToken(vo), { stamp: `parked-${vo}` });
        pilot.send({ type: 'offer', offerId: 'p', matchSeq: 0, resources: resources(64) });
        await pilot.next('parked');
        return pilot;
      }),
    );
    const alice = await m.userToken('alice', 'vo-a');
    const [jobId] = (
      await m.api('POST', '/api/jobs', {
        token: alice,
        json: { executable: 'x', requirements: { cores: { min: 128 } } },
      })
    ).body.jobIds;
    const explained = await m.api('POST', `/api/jobs/${jobId}/explain`, { token: alice, json: {} });
    assert.equal(explained.status, 200, JSON.stringify(explained.body));
    const pilotsSeen = JSON.stringify(explained.body);
    assert.ok(pilotsSeen.includes('parked-vo-a'), 'its own VO pilot is explained');
    assert.ok(!pilotsSeen.includes('parked-vo-b'), 'the other VO pilot is not disclosed');
    await Promise.all(parked.map((p) => p.close()));
  });
});
