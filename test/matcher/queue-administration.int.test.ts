/**
 * Steering the queues at run time, against a real matcher on port 0 and pilots over real WebSockets:
 * a paused task queue keeps its jobs Waiting while another queue's run, and gives them all after
 * resume; a share changed through PUT /api/policy changes the served ratio of two groups with equal
 * backlogs, without a restart; a lowered running limit holds from the next match and a raised one
 * serves the parked offer; every change is in the policy history and in the touched jobs' histories.
 * Then who may do it: a job administrator of another VO and invalid changes are refused, and nothing
 * changes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';
import type { MatchedJob } from '../../shared/protocol/messages.ts';

let m: TestMatcher;
let jobAdminA: string;
let jobAdminB: string;
let ref = 0;

before(async () => {
  m = await startTestMatcher();
  jobAdminA = await m.userToken('jadmin-a', 'vo-a', ['JobAdministrator']);
  jobAdminB = await m.userToken('jadmin-b', 'vo-b', ['JobAdministrator']);
});
after(() => m.close());

/** A pilot of VO vo-a that takes jobs one at a time and reports them Running (and Done). */
class Worker {
  seq = 0;
  private constructor(
    readonly pilot: RawPilot,
    readonly stamp: string,
  ) {}

  static async connect(stamp: string, site = 'Site.A'): Promise<Worker> {
    return new Worker(await RawPilot.connect(m.url, await m.pilotToken('vo-a', site, stamp), { stamp, site }), stamp);
  }

  /** Offers once: the job matched, or null when the offer was parked. */
  async offer(): Promise<MatchedJob | null> {
    this.pilot.send({ type: 'offer', offerId: `o${this.seq}`, matchSeq: this.seq, resources: resources() });
    const answer = await this.pilot.next('match', 'parked');
    if (answer.type === 'parked') return null;
    this.seq += 1;
    return answer.job;
  }

  /** The match pushed into the parked offer. */
  async pushed(): Promise<MatchedJob> {
    const { job } = await this.pilot.next('match');
    this.seq += 1;
    return job;
  }

  async report(job: MatchedJob, ...statuses: ('Running' | 'Done')[]): Promise<void> {
    for (const status of statuses) {
      ref += 1;
      this.pilot.send({
        type: 'job.status',
        ref,
        jobId: job.jobId,
        attempt: job.attempt,
        at: new Date().toISOString(),
        status,
      });
      await this.pilot.next('ack');
    }
  }

  /** Takes `count` jobs and runs each to Done; fails if an offer is parked on the way. */
  async run(count: number): Promise<MatchedJob[]> {
    const jobs: MatchedJob[] = [];
    for (let i = 0; i < count; i += 1) {
      const job = await this.offer();
      assert.ok(job, `pilot ${this.stamp} found no job after ${jobs.length}`);
      await this.report(job, 'Running', 'Done');
      jobs.push(job);
    }
    return jobs;
  }

  close(): Promise<void> {
    return this.pilot.close();
  }
}

async function submit(token: string, count: number, description: Record<string, unknown> = {}): Promise<number[]> {
  const jobs = Array.from({ length: count }, (_, i) => ({ executable: 'true', name: `job-${i}`, ...description }));
  const response = await m.api('POST', '/api/jobs', { token, json: jobs });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.jobIds as number[];
}

async function taskQueueOf(jobId: number): Promise<number> {
  return (await m.api('GET', `/api/jobs/${jobId}`)).body.taskQueueId as number;
}

interface HistoryRow {
  status: string;
  minorStatus: string;
  source: string;
  note?: string | null;
}

async function historyOf(jobId: number): Promise<HistoryRow[]> {
  return (await m.api('GET', `/api/jobs/${jobId}`)).body.history as HistoryRow[];
}

describe('task queue pause and resume', () => {
  it("a paused queue's jobs stay Waiting, with a minor status that says why, while another queue's run; all run after resume", async () => {
    const alice = await m.userToken('alice', 'vo-a');
    const bob = await m.userToken('bob', 'vo-a');
    const paused = await submit(alice, 4, { requirements: { sites: ['Site.A'] } });
    const running = await submit(bob, 4, { requirements: { sites: ['Site.A'] } });
    const tq = await taskQueueOf(paused[0] as number);

    const pause = await m.api('POST', `/api/task-queues/${tq}/pause`, {
      token: jobAdminA,
      json: { reason: 'input files being replaced' },
    });
    assert.equal(pause.status, 200, JSON.stringify(pause.body));
    assert.equal(pause.body.changed, true);
    assert.equal(pause.body.jobs, 4);
    assert.equal(pause.body.taskQueue.paused.by, 'jadmin-a');

    const workers = await Promise.all(['pause-1', 'pause-2'].map((stamp) => Worker.connect(stamp)));
    const served = (await Promise.all(workers.map((worker) => worker.run(2)))).flat();
    assert.deepEqual(
      served.map((job) => job.jobId).sort((a, b) => a - b),
      running,
      "only bob's queue was served",
    );
    // Nothing else fits these pilots now: both offers park, alice's jobs still wait.
    assert.deepEqual(await Promise.all(workers.map((worker) => worker.offer())), [null, null]);
    for (const id of paused) {
      const job = (await m.api('GET', `/api/jobs/${id}`)).body;
      assert.equal(job.status, 'Waiting');
      assert.equal(job.minorStatus, 'Task queue paused');
    }
    const detail = (await m.api('GET', `/api/task-queues/${tq}`, { token: jobAdminA })).body;
    assert.match(detail.whyIdle.join('\n'), /paused by jadmin-a .*: input files being replaced/);
    const listed = (await m.api('GET', '/api/task-queues?paused=true', { token: jobAdminA })).body;
    assert.deepEqual(
      listed.taskQueues.map((row: { id: number }) => row.id),
      [tq],
    );

    const resume = await m.api('POST', `/api/task-queues/${tq}/resume`, { token: jobAdminA });
    assert.equal(resume.status, 200);
    assert.equal(resume.body.taskQueue.paused, null);
    // The parked offers are served at once: no pilot has to ask again.
    const pushed = await Promise.all(workers.map((worker) => worker.pushed()));
    await Promise.all(workers.map((worker, i) => worker.report(pushed[i] as MatchedJob, 'Running', 'Done')));
    const rest = (await Promise.all(workers.map((worker) => worker.run(1)))).flat();
    assert.deepEqual(
      [...pushed, ...rest].map((job) => job.jobId).sort((a, b) => a - b),
      paused,
      "all of alice's jobs ran after resume",
    );
    await Promise.all(workers.map((worker) => worker.close()));

    const history = await historyOf(paused[0] as number);
    const notes = history.filter((row) => row.note).map((row) => [row.source, row.minorStatus, row.note]);
    assert.deepEqual(notes, [
      ['jadmin-a', 'Task queue paused', `task queue ${tq} paused: input files being replaced`],
      ['jadmin-a', 'Pilot Agent Submission', `task queue ${tq} resumed`],
    ]);
    assert.equal(history.at(-1)?.status, 'Done');
  });
});

describe('boosts and priorities', () => {
  it('a boosted queue is served before an older one; a new user priority reorders one owner’s jobs; both in the histories', async () => {
    const carol = await m.userToken('carol', 'vo-a');
    const dave = await m.userToken('dave', 'vo-a');
    const older = await submit(carol, 2, { requirements: { sites: ['Site.B'] } });
    const urgent = await submit(dave, 2, { requirements: { sites: ['Site.B'] } });
    const tq = await taskQueueOf(urgent[0] as number);
    const boost = await m.api('POST', '/api/task-queues/boost', {
      token: jobAdminA,
      json: { owner: 'dave', boost: 5 },
    });
    assert.equal(boost.status, 200, JSON.stringify(boost.body));
    assert.deepEqual(
      boost.body.taskQueues.map((row: { taskQueueId: number }) => row.taskQueueId),
      [tq],
    );
    // Carol's second job jumps ahead of her first.
    const priority = await m.api('POST', '/api/jobs/priority', {
      token: carol,
      json: { ids: [older[1]], priority: 9 },
    });
    assert.equal(priority.status, 200);
    assert.equal(priority.body.changed, 1);

    const worker = await Worker.connect('boost-1', 'Site.B');
    const order = (await worker.run(4)).map((job) => job.jobId);
    await worker.close();
    assert.deepEqual(order, [...urgent, older[1], older[0]]);

    const boosted = (await historyOf(urgent[0] as number)).find((row) => row.note?.includes('boost'));
    assert.equal(boosted?.note, `task queue ${tq} boost 0 → 5`);
    assert.equal(boosted?.source, 'jadmin-a');
    const reordered = (await historyOf(older[1] as number)).find((row) => row.note?.includes('priority'));
    assert.equal(reordered?.source, 'carol');
  });
});

describe('the scheduling policy changed at run time', () => {
  it('a share changed through PUT /api/policy shifts the served ratio of two groups with equal backlogs, without a restart', async () => {
    const prod = await m.userToken('prod-user', 'vo-a', ['NormalUser'], 'vo-a_prod');
    const user = await m.userToken('plain-user', 'vo-a', ['NormalUser'], 'vo-a_analysis');
    const perGroup = 300;
    await submit(prod, perGroup, { requirements: { sites: ['Site.C'] } });
    await submit(user, perGroup, { requirements: { sites: ['Site.C'] } });
    const current = (await m.api('GET', '/api/policy', { token: jobAdminA })).body;
    const equal = {
      ...current.policy,
      groups: { 'vo-a_prod': { share: 1000 }, 'vo-a_analysis': { share: 1000 } },
    };
    const put = await m.api('PUT', '/api/policy', {
      json: equal,
      headers: { 'if-match': `"${current.version}"` },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));

    const workers = await Promise.all(
      ['share-1', 'share-2', 'share-3', 'share-4'].map((s) => Worker.connect(s, 'Site.C')),
    );
    const prodFraction = async (matchesPerWorker: number) => {
      const jobs = (await Promise.all(workers.map((worker) => worker.run(matchesPerWorker)))).flat();
      return jobs.filter((job) => job.group === 'vo-a_prod').length / jobs.length;
    };
    const before = await prodFraction(50);

    const changed = await m.api('PUT', '/api/policy/groups/vo-a_prod', { json: { share: 3000 } });
    assert.equal(changed.status, 200);
    assert.equal(changed.body.appliedVersion, changed.body.version, 'this matcher applies the new version at once');
    const afterChange = await prodFraction(50);
    await Promise.all(workers.map((worker) => worker.close()));

    assert.ok(Math.abs(before - 0.5) <= 0.06, `equal shares served prod ${before} of 200 matches`);
    assert.ok(Math.abs(afterChange - 0.75) <= 0.06, `shares 3:1 served prod ${afterChange} of 200 matches`);

    const history = (await m.api('GET', '/api/policy/history?limit=2', { token: jobAdminA })).body.versions;
    assert.equal(history[0].version, changed.body.version);
    assert.equal(history[0].updatedBy, 'admin');
    assert.deepEqual(history[0].changes, [{ setting: 'groups.vo-a_prod.share', before: 1000, after: 3000 }]);
  });

  it('a lowered running limit holds from the next match; a raised one serves the parked offer at once', async () => {
    const erin = await m.userToken('erin', 'vo-a');
    await submit(erin, 4, { jobType: 'Reco', requirements: { sites: ['Site.D'] } });
    const setLimit = (maxRunning: number) =>
      m.api('PUT', '/api/policy/running-limits/Site.D/Reco', { json: { maxRunning } });
    assert.equal((await setLimit(4)).status, 200);
    const workers = await Promise.all(['limit-1', 'limit-2', 'limit-3'].map((s) => Worker.connect(s, 'Site.D')));
    for (const worker of workers.slice(0, 2)) {
      const job = await worker.offer();
      assert.ok(job);
      await worker.report(job, 'Running');
    }
    const lowered = await setLimit(2);
    assert.equal(lowered.status, 200);
    const third = workers[2] as Worker;
    assert.equal(await third.offer(), null, 'two Reco jobs run at Site.D: the limit of 2 holds');
    const tq = (await m.api('GET', '/api/task-queues?owner=erin', { token: jobAdminA })).body.taskQueues[0].id;
    const detail = (await m.api('GET', `/api/task-queues/${tq}`, { token: jobAdminA })).body;
    assert.match(detail.whyIdle.join('\n'), /running limit|limit/i);

    assert.equal((await setLimit(3)).status, 200);
    const pushed = await third.pushed();
    assert.equal(pushed.description.jobType, 'Reco');
    await Promise.all(workers.map((worker) => worker.close()));

    const history = (await m.api('GET', '/api/policy/history?limit=3', { token: jobAdminA })).body.versions;
    assert.deepEqual(
      history.map((version: { changes: unknown[] }) => version.changes),
      [
        [{ setting: 'runningLimits[Site.D, Reco].maxRunning', before: 2, after: 3 }],
        [{ setting: 'runningLimits[Site.D, Reco].maxRunning', before: 4, after: 2 }],
        [{ setting: 'runningLimits[Site.D, Reco].maxRunning', before: null, after: 4 }],
      ],
    );
  });

  it('an invalid policy changes nothing and names the field; an outdated If-Match is POLICY_CONFLICT', async () => {
    const before = (await m.api('GET', '/api/policy')).body;
    const invalid = await m.api('PUT', '/api/policy', {
      json: { ...before.policy, groups: { 'vo-a_prod': { share: -1 } } },
    });
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.error.code, 'VALIDATION_FAILED');
    assert.match(invalid.body.error.field, /groups\.vo-a_prod\.share/);
    const duplicate = await m.api('PUT', '/api/policy', {
      json: {
        ...before.policy,
        runningLimits: [
          { site: 'S', jobType: 'User', maxRunning: 1 },
          { site: 'S', jobType: 'User', maxRunning: 2 },
        ],
      },
    });
    assert.equal(duplicate.status, 400);
    assert.match(duplicate.body.error.field, /runningLimits/);
    const unknownField = await m.api('PUT', '/api/policy/groups/g', { json: { weight: 3 } });
    assert.equal(unknownField.status, 400);
    const stale = await m.api('PUT', '/api/policy', {
      json: before.policy,
      headers: { 'if-match': `"${before.version - 1}"` },
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.error.code, 'POLICY_CONFLICT');
    const after = (await m.api('GET', '/api/policy')).body;
    assert.equal(after.version, before.version);
    assert.deepEqual(after.policy, before.policy);
  });
});

describe('who may steer', () => {
  it('a job administrator of another VO is refused on every task-queue operation and changes nothing', async () => {
    const frank = await m.userToken('frank', 'vo-a');
    const ids = await submit(frank, 2, { requirements: { sites: ['Site.Nowhere'] } });
    const tq = await taskQueueOf(ids[0] as number);
    const attempts: [string, string, unknown][] = [
      ['GET', `/api/task-queues/${tq}`, undefined],
      ['POST', `/api/task-queues/${tq}/pause`, { reason: 'mine now' }],
      ['POST', `/api/task-queues/${tq}/resume`, undefined],
      ['POST', `/api/task-queues/${tq}/boost`, { boost: 100 }],
      ['POST', `/api/task-queues/${tq}/kill`, undefined],
      ['POST', `/api/task-queues/${tq}/reschedule`, undefined],
    ];
    for (const [method, path, json] of attempts) {
      const response = await m.api(method, path, { token: jobAdminB, ...(json !== undefined && { json }) });
      assert.equal(response.status, 403, `${method} ${path}`);
      assert.equal(response.body.error.code, 'FORBIDDEN');
    }
    const list = await m.api('GET', '/api/task-queues?vo=vo-a', { token: jobAdminB });
    assert.equal(list.status, 403);
    assert.equal(list.body.error.code, 'FORBIDDEN');
    const own = (await m.api('GET', '/api/task-queues', { token: jobAdminB })).body.taskQueues;
    assert.ok(
      own.every((row: { vo: string }) => row.vo === 'vo-b'),
      'a job administrator lists only their VO',
    );
    const ownerBoost = await m.api('POST', '/api/task-queues/boost', {
      token: jobAdminB,
      json: { owner: 'frank', vo: 'vo-a', boost: 10 },
    });
    assert.equal(ownerBoost.status, 403);
    const priority = await m.api('POST', '/api/jobs/priority', { token: jobAdminB, json: { ids, priority: 10 } });
    assert.equal(priority.status, 200);
    assert.equal(priority.body.failed, 2);
    assert.equal(priority.body.results[0].error.code, 'FORBIDDEN');

    const view = (await m.api('GET', `/api/task-queues/${tq}`, { token: jobAdminA })).body;
    assert.equal(view.paused, null);
    assert.equal(view.boost, 0);
    assert.equal(view.waitingJobs, 2);
    for (const id of ids) {
      const job = (await m.api('GET', `/api/jobs/${id}`)).body;
      assert.equal(job.priority, 1);
      assert.ok(
        job.history.every((row: HistoryRow) => !row.note),
        'no history row from a refused call',
      );
    }
  });

  it('an unknown task queue is TASK_QUEUE_NOT_FOUND; a bad boost names the field', async () => {
    const unknown = await m.api('POST', '/api/task-queues/999999/pause', { json: { reason: 'x' } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'TASK_QUEUE_NOT_FOUND');
    const grace = await m.userToken('grace', 'vo-a');
    const [id] = await submit(grace, 1, { requirements: { sites: ['Site.Nowhere'] } });
    const tq = await taskQueueOf(id as number);
    const tooBig = await m.api('POST', `/api/task-queues/${tq}/boost`, { json: { boost: 100_000 } });
    assert.equal(tooBig.status, 400);
    assert.equal(tooBig.body.error.field, 'boost');
    const noReason = await m.api('POST', `/api/task-queues/${tq}/pause`, { json: {} });
    assert.equal(noReason.status, 400);
    assert.equal(noReason.body.error.field, 'reason');
  });
});
