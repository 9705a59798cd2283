/**
 * Kill, reschedule and delete on one job or on a selection (by ids or by search), under the security
 * policy, answered job by job: jobs that cannot take the operation (unknown, someone else's, already
 * deleted, out of attempts) are reported with a code while the others change, and the store's
 * invariants hold afterwards.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkInvariants, readSnapshot } from '../../matcher/store/invariants.ts';
import { MAX_JOBS_PER_OPERATION } from '../../matcher/http/routes/job-operations.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

let m: TestMatcher;
let alice: string;
let bob: string;
before(async () => {
  m = await startTestMatcher();
  alice = await m.userToken('alice');
  bob = await m.userToken('bob');
});
after(() => m.close());

async function submit(token: string, count: number, name = 'op'): Promise<number[]> {
  const jobs = Array.from({ length: count }, (_, n) => ({
    name: `${name}-${n}`,
    executable: 'sleep',
    arguments: ['600'],
  }));
  const answer = await m.api('POST', '/api/jobs', { json: jobs, token });
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  return answer.body.jobIds;
}
const statusOf = async (id: number) => (await m.api('GET', `/api/jobs/${id}`)).body.status as string;

it('delete - a waiting job and a running one (killed first) end Deleted; a second delete changes nothing', async () => {
  const [waiting, running] = await submit(alice, 2, 'del');
  const pilot = await RawPilot.connect(m.url, await m.pilotToken('vo-a'), { stamp: 'op-pilot' });
  try {
    pilot.send({ type: 'offer', offerId: 'o', matchSeq: 0, resources: resources() });
    const { job } = await pilot.next('match');
    pilot.send({
      type: 'job.status',
      ref: 1,
      jobId: job.jobId,
      attempt: 1,
      at: new Date().toISOString(),
      status: 'Running',
    });
    await pilot.next('ack');
    const held = job.jobId as number;
    const other = held === waiting ? running! : waiting!;
    for (const id of [other, held]) {
      const answer = await m.api('POST', `/api/jobs/${id}/delete`, { token: alice });
      assert.deepEqual([answer.status, answer.body.status, answer.body.deleted], [200, 'Deleted', true]);
    }
    const commands = await pilot.next('commands');
    assert.deepEqual(
      commands.commands[0],
      { jobId: held, attempt: 1, command: 'kill' },
      'the pilot is told to kill it',
    );
    const history = (await m.api('GET', `/api/jobs/${held}`)).body.history.map((h: { status: string }) => h.status);
    assert.deepEqual(history.slice(-3), ['Running', 'Killed', 'Deleted']);
    const again = await m.api('POST', `/api/jobs/${held}/delete`, { token: alice });
    assert.deepEqual([again.status, again.body.deleted], [200, false]);
  } finally {
    await pilot.close();
  }
});

it("bulk - by ids: each job answered; unknown and other people's jobs fail alone, the rest change", async () => {
  const mine = await submit(alice, 3, 'bulk');
  const theirs = await submit(bob, 1, 'theirs');
  const answer = await m.api('POST', '/api/jobs/kill', { token: alice, json: { ids: [...mine, theirs[0], 999_999] } });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.deepEqual([answer.body.done, answer.body.failed], [3, 2]);
  const byId = new Map(answer.body.results.map((r: { jobId: number }) => [r.jobId, r]));
  assert.deepEqual((byId.get(theirs[0]) as any).error.code, 'FORBIDDEN');
  assert.deepEqual((byId.get(999_999) as any).error.code, 'JOB_NOT_FOUND');
  for (const id of mine) assert.equal(await statusOf(id), 'Killed');
  assert.equal(await statusOf(theirs[0]!), 'Waiting', "bob's job untouched");

  const rescheduled = await m.api('POST', '/api/jobs/reschedule', { token: alice, json: { ids: mine } });
  assert.deepEqual([rescheduled.body.done, rescheduled.body.failed], [3, 0]);
  for (const id of mine) assert.equal(await statusOf(id), 'Waiting');
});

it("bulk - by search: only the caller's jobs that match are touched; selections too large or malformed are refused", async () => {
  const mine = await submit(alice, 4, 'search');
  await submit(bob, 2, 'search');
  await m.api('POST', `/api/jobs/${mine[0]}/kill`, { token: alice });
  const answer = await m.api('POST', '/api/jobs/delete', { token: alice, json: { search: { status: ['Waiting'] } } });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  const touched = answer.body.results.map((r: { jobId: number }) => r.jobId);
  for (const id of mine.slice(1)) assert.ok(touched.includes(id), `job ${id} deleted`);
  for (const id of mine.slice(1)) assert.equal(await statusOf(id), 'Deleted');
  const bobs = await m.api('POST', '/api/jobs/search', { token: bob, json: { status: ['Waiting'] } });
  assert.equal(bobs.body.total, 3, "bob's waiting jobs are all still there");

  for (const json of [{}, { ids: [] }, { ids: [1], search: {} }, { search: { status: ['Nope'] } }, { ids: ['x'] }]) {
    const refused = await m.api('POST', '/api/jobs/kill', { token: alice, json });
    assert.deepEqual([refused.status, refused.body.error.code], [400, 'BAD_QUERY'], JSON.stringify(json));
  }
  const carol = await m.userToken('carol');
  await submit(carol, MAX_JOBS_PER_OPERATION + 1, 'many');
  const tooMany = await m.api('POST', '/api/jobs/kill', { token: carol, json: { search: {} } });
  assert.deepEqual([tooMany.status, tooMany.body.error.code], [400, 'BAD_QUERY']);
  assert.match(tooMany.body.error.message, /selects 10001 jobs/);
  const violations = checkInvariants(await readSnapshot(m.matcher.store));
  assert.deepEqual(violations, []);
});
