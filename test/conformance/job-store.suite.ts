/**
 * One behavioural suite for every JobStore implementation. Each implementation's test file calls
 * `jobStoreSuite(name, openFixture)` with a factory that returns a fresh, empty store, and a way to
 * start other claimants on the same database: other connections (PostgreSQL) or other processes
 * (SQLite, where one process's connections cannot run at the same time), so that the concurrency
 * cases below could fail if claims were not atomic.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { JobStore } from '../../matcher/store/job-store.ts';
import { PilothouseError } from '../../shared/errors.ts';
import { alice, bob, carol, newJob } from '../helpers/jobs.ts';

const T0 = '2026-01-01T00:00:00.000Z';
const at = (seconds: number): string => new Date(Date.parse(T0) + seconds * 1000).toISOString();
const claimAt = (pilotId: string, seconds = 1) => ({
  pilotId,
  site: 'Site.A',
  ce: 'ce1',
  at: at(seconds),
  jobType: 'User',
  maxRunning: null,
  matchingDelaySec: null,
});

/** Another connection or process claiming from the same database. */
export interface Claimant {
  /** Claims from the task queue until it is empty, `jobsPerClaim` at a time (default 1); the ids it won. */
  claimUntilEmpty(taskQueueId: number, pilotId: string, jobsPerClaim?: number): Promise<number[]>;
  close(): Promise<void>;
}

/**
 * Claims from the task queue until it is empty (what a competing replica does), one job at a time or
 * `jobsPerClaim` at a time (an offer with room for several); the ids it won.
 */
export async function claimUntilEmpty(
  store: JobStore,
  taskQueueId: number,
  pilotId: string,
  jobsPerClaim = 1,
): Promise<number[]> {
  const won: number[] = [];
  for (;;) {
    const claim = {
      pilotId,
      site: 'Site.A',
      ce: 'ce1',
      at: new Date().toISOString(),
      jobType: 'User',
      maxRunning: null,
      matchingDelaySec: null,
    };
    if (jobsPerClaim === 1) {
      const result = await store.claimFromTaskQueue(taskQueueId, claim);
      if (!result.job) return won;
      won.push(result.job.id);
    } else {
      const result = await store.claimJobsFromTaskQueue(taskQueueId, claim, jobsPerClaim);
      if (result.jobs.length === 0) return won;
      won.push(...result.jobs.map((job) => job.id));
    }
  }
}

export interface JobStoreFixture {
  store: JobStore;
  /** Claimants that are ready to start at once (their start is what the test times). */
  claimants(count: number): Promise<Claimant[]>;
}

export function jobStoreSuite(name: string, openFixture: () => Promise<JobStoreFixture>): void {
  describe(`JobStore conformance: ${name}`, () => {
    let store: JobStore;
    let fixture: JobStoreFixture;
    beforeEach(async () => {
      fixture = await openFixture();
      store = fixture.store;
    });
    afterEach(async () => {
      await store.close();
    });

    it('submit stores jobs Waiting with the history Received → Checking → Waiting', async () => {
      const {
        jobIds: [id],
      } = await store.submitJobs([newJob(alice)], T0);
      const job = await store.getJob(id as number);
      assert.equal(job?.status, 'Waiting');
      assert.equal(job?.owner, 'alice');
      assert.equal(job?.attempt, 1);
      const history = await store.getJobHistory(id as number);
      assert.deepEqual(
        history.map((h) => h.status),
        ['Received', 'Checking', 'Waiting'],
      );
      assert.ok(history.every((h) => h.applied));
    });

    it('jobs with equal owner and requirements share a task queue; different ones do not', async () => {
      const { jobIds: ids } = await store.submitJobs(
        [newJob(alice), newJob(alice), newJob(bob), newJob(alice, { requirements: { cores: { min: 2 } } })],
        T0,
      );
      const jobs = await Promise.all(ids.map((id) => store.getJob(id)));
      const tqs = jobs.map((job) => job?.taskQueueId);
      assert.equal(tqs[0], tqs[1]);
      assert.notEqual(tqs[0], tqs[2]);
      assert.notEqual(tqs[0], tqs[3]);
      const listed = await store.listTaskQueues({ vo: 'vo-a' });
      assert.equal(listed.length, 3);
      assert.equal(listed.find((tq) => tq.id === tqs[0])?.waitingJobs, 2);
    });

    it('listTaskQueues filters by VO and omits empty queues', async () => {
      await store.submitJobs([newJob(alice), newJob(carol)], T0);
      assert.deepEqual(
        (await store.listTaskQueues({ vo: 'vo-b' })).map((tq) => tq.owner),
        ['carol'],
      );
      const [tq] = await store.listTaskQueues({ vo: 'vo-b' });
      await store.claimFromTaskQueue(tq?.id as number, claimAt('p1'));
      assert.deepEqual(await store.listTaskQueues({ vo: 'vo-b' }), []);
    });

    it('listTaskQueuesAfter pages through the same queues as listTaskQueues, by id, empty ones left out', async () => {
      await store.submitJobs(
        [1, 2, 3, 4, 5].map((cores) =>
          newJob(cores % 2 === 0 ? alice : carol, { requirements: { cores: { min: cores } } }),
        ),
        T0,
      );
      const all = await store.listTaskQueues({});
      const [emptied] = all;
      await store.claimFromTaskQueue(emptied?.id as number, claimAt('p1'));
      const paged: number[] = [];
      for (let afterId = 0; ;) {
        const page = await store.listTaskQueuesAfter(afterId, 2);
        assert.ok(page.length <= 2);
        paged.push(...page.map((tq) => tq.id));
        if (page.length < 2) break;
        afterId = page.at(-1)?.id as number;
      }
      assert.deepEqual(
        paged,
        all.slice(1).map((tq) => tq.id),
      );
      assert.deepEqual(
        paged,
        [...paged].sort((a, b) => a - b),
      );
      const [first] = await store.listTaskQueuesAfter(0, 1);
      assert.deepEqual(
        first,
        (await store.listTaskQueues({})).find((tq) => tq.id === first?.id),
      );
    });

    it('claim takes the highest priority job first, then the oldest, and sets Matched', async () => {
      const { jobIds: ids } = await store.submitJobs(
        [newJob(alice, { priority: 1 }), newJob(alice, { priority: 5 }), newJob(alice, { priority: 1 })],
        T0,
      );
      const jobs = await Promise.all(ids.map((id) => store.getJob(id)));
      // Different priorities are different descriptions but the same TQ definition (priority is not a requirement).
      assert.equal(jobs[0]?.taskQueueId, jobs[1]?.taskQueueId);
      const tqId = jobs[0]?.taskQueueId as number;
      const order: number[] = [];
      for (let i = 0; i < 3; i += 1)
        order.push((await store.claimFromTaskQueue(tqId, claimAt(`p${i}`))).job?.id as number);
      assert.deepEqual(order, [ids[1], ids[0], ids[2]]);
      assert.equal((await store.claimFromTaskQueue(tqId, claimAt('p9'))).job, null);
      const matched = await store.getJob(ids[1] as number);
      assert.equal(matched?.status, 'Matched');
      assert.equal(matched?.minorStatus, 'Assigned');
      assert.equal(matched?.pilotId, 'p0');
      assert.equal(matched?.site, 'Site.A');
    });

    it('concurrent claims never hand one job out twice', async () => {
      const { jobIds: ids } = await store.submitJobs(
        Array.from({ length: 50 }, () => newJob(alice)),
        T0,
      );
      const tqId = (await store.getJob(ids[0] as number))?.taskQueueId as number;
      const claims = await Promise.all(
        Array.from({ length: 80 }, (_, i) => store.claimFromTaskQueue(tqId, claimAt(`p${i}`))),
      );
      const won = claims.filter((claim) => claim.job !== null).map((claim) => claim.job?.id);
      assert.equal(won.length, 50);
      assert.equal(new Set(won).size, 50);
    });

    for (const jobsPerClaim of [1, 7]) {
      it(`claimants on other connections or processes, all at once, ${jobsPerClaim === 1 ? 'one job' : `${jobsPerClaim} jobs`} per claim, take every job exactly once`, async () => {
        const { jobIds: ids } = await store.submitJobs(
          Array.from({ length: 300 }, () => newJob(alice)),
          T0,
        );
        const tqId = (await store.getJob(ids[0] as number))?.taskQueueId as number;
        const claimants = await fixture.claimants(4);
        try {
          const won = await Promise.all(
            claimants.map((c, i) => c.claimUntilEmpty(tqId, `claimant-${i}`, jobsPerClaim)),
          );
          const all = won.flat();
          assert.equal(all.length, 300, 'every job claimed');
          assert.equal(new Set(all).size, 300, 'no job claimed twice');
          assert.ok(
            won.filter((list) => list.length > 0).length >= 2,
            `the claimants really competed: ${won.map((l) => l.length)}`,
          );
          assert.equal((await store.getTaskQueue(tqId))?.waitingJobs, 0);
          assert.deepEqual(await store.runningAtSite('Site.A'), { User: 300 }, 'the site counts every job taken');
          for (const id of [ids[0], ids[150], ids[299]] as number[]) {
            const matched = (await store.getJobHistory(id)).filter((h) => h.status === 'Matched');
            assert.equal(matched.length, 1, `job ${id} has one Matched entry`);
          }
        } finally {
          await Promise.all(claimants.map((c) => c.close()));
        }
      });
    }

    it('a claim of several takes the best jobs in order in one write: each Matched with its history, the counts after all of them', async () => {
      const { jobIds: ids, taskQueueIds } = await store.submitJobs(
        [
          newJob(alice, { priority: 1 }),
          newJob(alice, { priority: 7 }),
          newJob(alice, { priority: 1 }),
          newJob(alice, { priority: 7 }),
          newJob(alice, { priority: 1 }),
        ],
        T0,
      );
      assert.equal(taskQueueIds.length, 1);
      const tqId = taskQueueIds[0] as number;
      const first = await store.claimJobsFromTaskQueue(tqId, claimAt('p1'), 3);
      assert.deepEqual(
        first.jobs.map((job) => job.id),
        [ids[1], ids[3], ids[0]],
        'highest priority first, then the oldest',
      );
      assert.equal(first.reason, undefined);
      assert.deepEqual(first.taskQueue, { id: tqId, waitingJobs: 2, topPriority: 1, nextJobId: ids[2] });
      for (const job of first.jobs) {
        assert.equal(job.status, 'Matched');
        assert.equal(job.pilotId, 'p1');
        const history = await store.getJobHistory(job.id);
        assert.deepEqual(
          history.filter((h) => h.status === 'Matched').map((h) => [h.minorStatus, h.source]),
          [['Assigned', 'Matcher']],
          `job ${job.id} has one Matched entry`,
        );
      }
      assert.deepEqual(await store.runningAtSite('Site.A'), { User: 3 }, 'the site counts every job taken');
      const rest = await store.claimJobsFromTaskQueue(tqId, claimAt('p2'), 8);
      assert.deepEqual(
        rest.jobs.map((job) => job.id),
        [ids[2], ids[4]],
        'fewer than asked when fewer wait',
      );
      assert.deepEqual(rest.taskQueue, { id: tqId, waitingJobs: 0, topPriority: 0, nextJobId: null });
      const none = await store.claimJobsFromTaskQueue(tqId, claimAt('p3'), 4);
      assert.deepEqual(none, {
        jobs: [],
        reason: 'empty',
        taskQueue: { id: tqId, waitingJobs: 0, topPriority: 0, nextJobId: null },
      });
      assert.deepEqual(await store.runningAtSite('Site.A'), { User: 5 });
    });

    it('a claim of several under a running limit takes one job at most, and none at the limit', async () => {
      const { taskQueueIds } = await store.submitJobs([newJob(alice), newJob(alice), newJob(alice)], T0);
      const tqId = taskQueueIds[0] as number;
      const limited = { ...claimAt('p1'), maxRunning: 1 };
      const taken = await store.claimJobsFromTaskQueue(tqId, limited, 3);
      assert.equal(taken.jobs.length, 1);
      const refused = await store.claimJobsFromTaskQueue(tqId, limited, 3);
      assert.equal(refused.jobs.length, 0);
      assert.equal(refused.reason, 'running-limit');
      assert.equal((await store.getTaskQueue(tqId))?.waitingJobs, 2);
    });

    it('status reports follow the state machine; a refused one is recorded but not applied', async () => {
      const {
        jobIds: [id],
      } = await store.submitJobs([newJob(alice)], T0);
      const jobId = id as number;
      const tqId = (await store.getJob(jobId))?.taskQueueId as number;
      await store.claimFromTaskQueue(tqId, claimAt('p1'));
      const running = await store.reportStatus(jobId, 1, {
        status: 'Running',
        minorStatus: 'Application',
        at: at(2),
        source: 'Pilot',
      });
      assert.deepEqual(running, { applied: true, status: 'Running', duplicate: false });
      const bogus = await store.reportStatus(jobId, 1, { status: 'Waiting', at: at(3), source: 'Pilot' });
      assert.deepEqual(bogus, { applied: false, status: 'Running', duplicate: false });
      await store.reportStatus(jobId, 1, {
        status: 'Done',
        minorStatus: 'Execution Complete',
        exitCode: 0,
        at: at(4),
        source: 'Pilot',
      });
      const job = await store.getJob(jobId);
      assert.equal(job?.status, 'Done');
      assert.equal(job?.exitCode, 0);
      assert.equal(job?.startedAt, at(2));
      assert.equal(job?.endedAt, at(4));
      const history = await store.getJobHistory(jobId);
      const refused = history.find((h) => h.status === 'Waiting' && !h.applied);
      assert.ok(refused, 'the refused update is in the history');
      assert.equal(refused.source, 'Pilot (SM)');
    });

    it('a replayed report (same key) changes nothing', async () => {
      const {
        jobIds: [id],
      } = await store.submitJobs([newJob(alice)], T0);
      const jobId = id as number;
      await store.claimFromTaskQueue((await store.getJob(jobId))?.taskQueueId as number, claimAt('p1'));
      const report = { status: 'Running' as const, minorStatus: 'Application', at: at(2), source: 'Pilot' };
      await store.reportStatus(jobId, 1, report, 'k1');
      const again = await store.reportStatus(jobId, 1, report, 'k1');
      assert.equal(again.duplicate, true);
      assert.equal((await store.getJobHistory(jobId)).filter((h) => h.status === 'Running').length, 1);
    });

    it('several reports of one attempt apply in order in one call, each recorded once, as one by one', async () => {
      const {
        jobIds: [oneId, twoId],
      } = await store.submitJobs([newJob(alice), newJob(alice)], T0);
      const tqId = (await store.getJob(oneId as number))?.taskQueueId as number;
      await store.claimFromTaskQueue(tqId, claimAt('p1'));
      await store.claimFromTaskQueue(tqId, claimAt('p1'));
      const reports = [
        { status: 'Running' as const, minorStatus: 'Initialization', at: at(2), source: 'Pilot' },
        { minorStatus: 'Application', applicationStatus: 'step 1', at: at(3), source: 'Pilot' },
        { status: 'Waiting' as const, at: at(4), source: 'Pilot' }, // refused by the state machine
        { status: 'Done' as const, minorStatus: 'Execution Complete', exitCode: 0, at: at(5), source: 'Pilot' },
      ];
      const heldBy = { pilotId: 'p1', vo: alice.vo };
      const together = await store.reportStatuses(
        oneId as number,
        1,
        reports.map((report, i) => ({ report, reportKey: `k${i}` })),
        heldBy,
      );
      assert.deepEqual(
        together.map((o) => [o.applied, o.status, o.duplicate]),
        [
          [true, 'Running', false],
          [true, 'Running', false],
          [false, 'Running', false],
          [true, 'Done', false],
        ],
      );
      for (const [i, report] of reports.entries()) {
        await store.reportStatus(twoId as number, 1, report, `k${i}`, heldBy);
      }
      const [one, two] = [await store.getJob(oneId as number), await store.getJob(twoId as number)];
      const rowOf = (job: typeof one) => [
        job?.status,
        job?.minorStatus,
        job?.applicationStatus,
        job?.exitCode,
        job?.startedAt,
        job?.endedAt,
        job?.lastUpdateAt,
      ];
      assert.deepEqual(rowOf(one), ['Done', 'Execution Complete', 'step 1', 0, at(2), at(5), at(5)]);
      assert.deepEqual(rowOf(one), rowOf(two), 'the same row as the reports applied one by one');
      const historyOf = async (id: number) =>
        (await store.getJobHistory(id)).map((h) => [h.status, h.minorStatus, h.applicationStatus, h.source, h.applied]);
      assert.deepEqual(await historyOf(oneId as number), await historyOf(twoId as number));
      // A replay of the frame, with one report more: the known ones are duplicates, the new one is refused
      // by the state machine (Done is final), and nothing is recorded twice.
      const replay = await store.reportStatuses(
        oneId as number,
        1,
        [...reports, { status: 'Running' as const, at: at(6), source: 'Pilot' }].map((report, i) => ({
          report,
          reportKey: `k${i}`,
        })),
        heldBy,
      );
      assert.deepEqual(
        replay.map((o) => o.duplicate),
        [true, true, true, true, false],
      );
      assert.equal(replay[4]?.applied, false);
      assert.equal((await store.getJobHistory(oneId as number)).filter((h) => h.status === 'Done').length, 1);
      // The checks about the attempt hold for all: nothing is recorded when one fails.
      const before = (await store.getJobHistory(oneId as number)).length;
      await assert.rejects(
        store.reportStatuses(oneId as number, 2, [{ report: reports[0] as (typeof reports)[0] }]),
        (error: unknown) => error instanceof PilothouseError && error.code === 'ATTEMPT_MISMATCH',
      );
      await assert.rejects(
        store.reportStatuses(oneId as number, 1, [{ report: { status: 'Failed', at: at(7), source: 'Pilot' } }], {
          pilotId: 'p2',
          vo: alice.vo,
        }),
        (error: unknown) => error instanceof PilothouseError && error.code === 'FORBIDDEN',
      );
      assert.equal((await store.getJobHistory(oneId as number)).length, before);
    });

    it('a report said to come from a pilot is refused (FORBIDDEN, nothing recorded) unless that pilot holds the job', async () => {
      const {
        jobIds: [id],
      } = await store.submitJobs([newJob(alice)], T0);
      const jobId = id as number;
      await store.claimFromTaskQueue((await store.getJob(jobId))?.taskQueueId as number, claimAt('p1'));
      const report = { status: 'Running' as const, at: at(2), source: 'Pilot' };
      for (const heldBy of [
        { pilotId: 'p2', vo: alice.vo },
        { pilotId: 'p1', vo: 'another-vo' },
      ]) {
        await assert.rejects(
          store.reportStatus(jobId, 1, report, undefined, heldBy),
          (error: unknown) => error instanceof PilothouseError && error.code === 'FORBIDDEN',
        );
      }
      assert.equal((await store.getJob(jobId))?.status, 'Matched');
      assert.ok(!(await store.getJobHistory(jobId)).some((h) => h.status === 'Running'));
      const held = await store.reportStatus(jobId, 1, report, undefined, { pilotId: 'p1', vo: alice.vo });
      assert.equal(held.applied, true);
    });

    it('reports on another attempt or an unknown job are refused with stable codes', async () => {
      const {
        jobIds: [id],
      } = await store.submitJobs([newJob(alice)], T0);
      await assert.rejects(
        store.reportStatus(id as number, 2, { status: 'Running', at: at(1), source: 'Pilot' }),
        (error: unknown) => {
          return error instanceof PilothouseError && error.code === 'ATTEMPT_MISMATCH';
        },
      );
      await assert.rejects(
        store.reportStatus(999_999, 1, { status: 'Running', at: at(1), source: 'Pilot' }),
        (error: unknown) => {
          return error instanceof PilothouseError && error.code === 'JOB_NOT_FOUND';
        },
      );
    });

    it('killing a waiting job removes it from its task queue', async () => {
      const {
        jobIds: [id],
      } = await store.submitJobs([newJob(alice)], T0);
      const jobId = id as number;
      await store.reportStatus(jobId, 1, {
        status: 'Killed',
        minorStatus: 'Marked for termination',
        at: at(1),
        source: 'JobManager',
      });
      assert.deepEqual(await store.listTaskQueues({}), []);
      assert.equal((await store.getJob(jobId))?.status, 'Killed');
    });

    it('search filters by status, owner and site, sorts and pages', async () => {
      const { jobIds: ids } = await store.submitJobs([newJob(alice), newJob(alice), newJob(bob), newJob(carol)], T0);
      await store.claimFromTaskQueue((await store.getJob(ids[2] as number))?.taskQueueId as number, claimAt('p1'));
      const base = { sort: [{ column: 'id' as const, direction: 'asc' as const }], page: 1, perPage: 10 };
      assert.deepEqual(
        (await store.searchJobs({ ...base, owners: ['alice'] })).jobs.map((j) => j.id),
        ids.slice(0, 2),
      );
      assert.deepEqual(
        (await store.searchJobs({ ...base, statuses: ['Matched'] })).jobs.map((j) => j.id),
        [ids[2]],
      );
      assert.deepEqual(
        (await store.searchJobs({ ...base, sites: ['Site.A'] })).jobs.map((j) => j.id),
        [ids[2]],
      );
      const page2 = await store.searchJobs({
        ...base,
        sort: [{ column: 'id', direction: 'desc' }],
        page: 2,
        perPage: 3,
      });
      assert.equal(page2.total, 4);
      assert.deepEqual(
        page2.jobs.map((j) => j.id),
        [ids[0]],
      );
      assert.equal((await store.searchJobs({ ...base, owners: [] })).total, 0, 'an empty filter matches nothing');
    });

    it("keeps a job's last output for its current attempt only, replacing the one before", async () => {
      const {
        jobIds: [id],
      } = await store.submitJobs([newJob(alice)], T0);
      const jobId = id as number;
      assert.equal(await store.getOutputTail(jobId), null);
      await store.recordOutputTail(jobId, 1, { stdout: 'one\n', stderr: '' }, at(1));
      await store.recordOutputTail(jobId, 1, { stdout: 'one\ntwo\n', stderr: 'warn\n' }, at(2));
      assert.deepEqual(await store.getOutputTail(jobId), {
        attempt: 1,
        stdout: 'one\ntwo\n',
        stderr: 'warn\n',
        updatedAt: at(2),
      });
      await store.recordOutputTail(jobId, 2, { stdout: 'from an attempt that does not exist', stderr: '' }, at(3));
      assert.equal((await store.getOutputTail(jobId))?.updatedAt, at(2), 'another attempt changes nothing');
      await store.recordOutputTail(jobId + 1000, 1, { stdout: 'x', stderr: '' }, at(3));
      assert.equal(await store.getOutputTail(jobId + 1000), null, 'an unknown job keeps nothing');
    });

    it('keeps the output a pilot sends only while that pilot holds the job', async () => {
      const {
        jobIds: [id],
      } = await store.submitJobs([newJob(alice)], T0);
      const jobId = id as number;
      await store.claimFromTaskQueue((await store.getJob(jobId))?.taskQueueId as number, claimAt('p1'));
      for (const heldBy of [
        { pilotId: 'p2', vo: alice.vo },
        { pilotId: 'p1', vo: 'another-vo' },
      ]) {
        await store.recordOutputTail(jobId, 1, { stdout: 'not yours', stderr: '' }, at(2), heldBy);
      }
      assert.equal(await store.getOutputTail(jobId), null, 'another pilot or VO writes nothing');
      await store.recordOutputTail(jobId, 1, { stdout: 'mine\n', stderr: '' }, at(3), { pilotId: 'p1', vo: alice.vo });
      assert.equal((await store.getOutputTail(jobId))?.stdout, 'mine\n');
    });

    it('killing a running job queues one kill command for its attempt, delivered once', async () => {
      const {
        jobIds: [id],
      } = await store.submitJobs([newJob(alice)], T0);
      const jobId = id as number;
      await store.claimFromTaskQueue((await store.getJob(jobId))?.taskQueueId as number, claimAt('p1'));
      await store.reportStatus(jobId, 1, { status: 'Running', at: at(2), source: 'Pilot' });
      const sample = { cpuSec: 1, rssMB: 10, wallSec: 2 };
      assert.deepEqual(await store.recordHeartbeat(jobId, 1, sample, at(3)), []);
      assert.equal((await store.getJob(jobId))?.heartbeatAt, at(3));
      const killed = await store.killJob(jobId, at(4), 'alice');
      assert.deepEqual(killed, { applied: true, status: 'Killed', duplicate: false, commandQueued: true });
      assert.deepEqual(await store.recordHeartbeat(jobId, 1, sample, at(5)), [{ jobId, attempt: 1, command: 'kill' }]);
      assert.deepEqual(await store.takePendingCommands(jobId, 1, at(6)), [], 'a command is delivered once');
      // The pilot's report after the kill does not resurrect the job (DIRAC#5849's lesson).
      const late = await store.reportStatus(jobId, 1, {
        status: 'Failed',
        minorStatus: 'Received Kill signal',
        at: at(7),
        source: 'Pilot',
      });
      assert.equal(late.applied, false);
      assert.equal((await store.getJob(jobId))?.status, 'Killed');
    });

    it('killing a waiting job queues no command; killing a finished job is refused', async () => {
      const {
        jobIds: [waiting, done],
      } = await store.submitJobs([newJob(alice), newJob(bob)], T0);
      assert.equal((await store.killJob(waiting as number, at(1), 'alice')).commandQueued, false);
      await store.reportStatus(done as number, 1, { status: 'Killed', at: at(1), source: 'x' });
      const again = await store.killJob(done as number, at(2), 'bob');
      assert.equal(again.status, 'Killed');
      await assert.rejects(
        store.killJob(424242, at(2), 'bob'),
        (e: unknown) => e instanceof PilothouseError && e.code === 'JOB_NOT_FOUND',
      );
    });

    it('a claim returns the TQ figures after it, and reports an empty TQ', async () => {
      const { jobIds, taskQueueIds } = await store.submitJobs([newJob(alice, { priority: 3 }), newJob(alice)], T0);
      assert.equal(taskQueueIds.length, 1);
      const tqId = taskQueueIds[0] as number;
      const first = await store.claimFromTaskQueue(tqId, claimAt('p1'));
      assert.equal(first.job?.id, jobIds[0]);
      assert.deepEqual(first.taskQueue, { id: tqId, waitingJobs: 1, topPriority: 1, nextJobId: jobIds[1] });
      await store.claimFromTaskQueue(tqId, claimAt('p2'));
      const empty = await store.claimFromTaskQueue(tqId, claimAt('p3'));
      assert.deepEqual(empty, {
        job: null,
        reason: 'empty',
        taskQueue: { id: tqId, waitingJobs: 0, topPriority: 0, nextJobId: null },
      });
    });

    it('per-site running limits count held jobs and free a slot when a job ends', async () => {
      const { jobIds, taskQueueIds } = await store.submitJobs([newJob(alice), newJob(alice), newJob(alice)], T0);
      const tqId = taskQueueIds[0] as number;
      const limited = { ...claimAt('p1'), maxRunning: 2 };
      assert.ok((await store.claimFromTaskQueue(tqId, limited)).job);
      assert.ok((await store.claimFromTaskQueue(tqId, limited)).job);
      const third = await store.claimFromTaskQueue(tqId, limited);
      assert.equal(third.job, null);
      assert.equal(third.job === null && third.reason, 'running-limit');
      assert.deepEqual(await store.runningAtSite('Site.A'), { User: 2 });
      assert.ok((await store.claimFromTaskQueue(tqId, { ...limited, site: 'Site.B' })).job, 'the limit is per site');
      await store.reportStatus(jobIds[0] as number, 1, { status: 'Failed', at: at(5), source: 'Pilot' });
      assert.deepEqual(await store.runningAtSite('Site.A'), { User: 1 });
    });

    it('a matching delay spaces matches of a job type at a site', async () => {
      const { taskQueueIds } = await store.submitJobs([newJob(alice), newJob(alice), newJob(alice)], T0);
      const tqId = taskQueueIds[0] as number;
      const delayed = (seconds: number) => ({ ...claimAt('p1', seconds), matchingDelaySec: 10 });
      assert.ok((await store.claimFromTaskQueue(tqId, delayed(0))).job);
      const early = await store.claimFromTaskQueue(tqId, delayed(5));
      assert.equal(early.job === null && early.reason, 'matching-delay');
      assert.ok((await store.claimFromTaskQueue(tqId, delayed(11))).job);
    });

    it('the site mask keeps the latest status per site', async () => {
      await store.setSiteStatus({
        site: 'Site.B',
        status: 'Banned',
        reason: 'downtime',
        changedBy: 'admin',
        changedAt: at(1),
      });
      await store.setSiteStatus({
        site: 'Site.A',
        status: 'Banned',
        reason: 'black hole',
        changedBy: 'admin',
        changedAt: at(2),
      });
      await store.setSiteStatus({
        site: 'Site.B',
        status: 'Active',
        reason: 'back',
        changedBy: 'admin',
        changedAt: at(3),
      });
      assert.deepEqual(
        (await store.siteMask()).map((e) => [e.site, e.status, e.reason]),
        [
          ['Site.A', 'Banned', 'black hole'],
          ['Site.B', 'Active', 'back'],
        ],
      );
    });

    it('a setting is stored as given, and every change raises its version by one', async () => {
      assert.equal(await store.getSetting('scheduling-policy'), null);
      const first = await store.putSetting('scheduling-policy', '{"groups":{}}', { at: at(1), by: 'admin' });
      assert.deepEqual(first, {
        name: 'scheduling-policy',
        value: '{"groups":{}}',
        version: 1,
        updatedAt: at(1),
        updatedBy: 'admin',
      });
      // Several writers at once (a promise each; on PostgreSQL each takes its own pooled connection).
      await Promise.all(
        Array.from({ length: 8 }, (_, n) =>
          store.putSetting('scheduling-policy', `{"n":${n}}`, { at: at(2 + n), by: `writer-${n}` }),
        ),
      );
      const last = await store.getSetting('scheduling-policy');
      assert.equal(last?.version, 9, 'no change lost its version step');
      assert.match(last?.value ?? '', /^\{"n":\d\}$/);
      assert.equal(await store.getSetting('another'), null);
    });

    it('a setting created by writers at once is stored once: the first writer wins, every writer learns which', async () => {
      const created = await Promise.all(
        Array.from({ length: 8 }, (_, n) => store.createSetting('cluster-id', `id-${n}`, { at: at(n), by: `r${n}` })),
      );
      const stored = await store.getSetting('cluster-id');
      assert.equal(stored?.version, 1);
      for (const setting of created) assert.deepEqual(setting, stored);
      assert.deepEqual(await store.createSetting('cluster-id', 'other', { at: at(9), by: 'late' }), stored);
    });

    it('fair-share usage adds up over writers at once, and every call returns every total', async () => {
      assert.deepEqual(await store.addShareUsage([]), []);
      const groups = '["group","vo-a"]';
      // Eight matchers' syncs at once (on PostgreSQL each on its own pooled connection).
      await Promise.all(
        Array.from({ length: 8 }, (_, n) =>
          store.addShareUsage([
            { scope: groups, entity: 'prod', usage: 1.5 },
            { scope: groups, entity: `user-${n % 2}`, usage: n },
          ]),
        ),
      );
      const totals = await store.addShareUsage([{ scope: '["owner","vo-a","prod"]', entity: 'alice', usage: 4 }]);
      const byEntity = Object.fromEntries(totals.map((t) => [`${t.scope} ${t.entity}`, t.usage]));
      assert.deepEqual(byEntity, {
        [`${groups} prod`]: 12,
        [`${groups} user-0`]: 0 + 2 + 4 + 6,
        [`${groups} user-1`]: 1 + 3 + 5 + 7,
        '["owner","vo-a","prod"] alice': 4,
      });
    });

    it('sandboxes are recorded once, keeping the first owner, and counted once for their VO', async () => {
      const sha = 'a'.repeat(64);
      await store.recordSandbox({ sha256: sha, sizeBytes: 10, vo: 'vo-sb', owner: 'alice', createdAt: T0 });
      await store.recordSandbox({ sha256: sha, sizeBytes: 10, vo: 'vo-sb', owner: 'bob', createdAt: at(1) });
      assert.equal((await store.getSandbox(sha))?.owner, 'alice');
      assert.equal(await store.getSandbox('b'.repeat(64)), null);
      // Sizes beyond 32 bits: a VO's quota is counted in hundreds of GiB.
      await store.recordSandbox({
        sha256: 'c'.repeat(64),
        sizeBytes: 5 * 2 ** 32,
        vo: 'vo-sb',
        owner: 'alice',
        createdAt: T0,
      });
      await store.recordSandbox({
        sha256: 'c'.repeat(64),
        sizeBytes: 5 * 2 ** 32,
        vo: 'vo-other',
        owner: 'eve',
        createdAt: T0,
      });
      await store.recordSandbox({ sha256: 'd'.repeat(64), sizeBytes: 7, vo: 'vo-other', owner: 'eve', createdAt: T0 });
      assert.equal(await store.sandboxBytesOfVo('vo-sb'), 10 + 5 * 2 ** 32);
      assert.equal(await store.sandboxBytesOfVo('vo-other'), 7);
      assert.equal(await store.sandboxBytesOfVo('vo-none'), 0);
    });

    it('a silent held job is found, marked Stalled without touching its last update, and a heartbeat revives it', async () => {
      const {
        jobIds: [jobId],
        taskQueueIds: [tqId],
      } = await store.submitJobs([newJob(alice)], T0);
      await store.claimFromTaskQueue(tqId as number, claimAt('p1'));
      await store.reportStatus(jobId as number, 1, {
        status: 'Running',
        minorStatus: 'Application',
        at: at(2),
        source: 'Pilot',
      });
      assert.deepEqual(await store.findHeldJobs(['Running'], at(2)), [], 'not silent before its last sign');
      const [held] = await store.findHeldJobs(['Running', 'Completing'], at(100));
      assert.deepEqual([held?.id, held?.attempt, held?.pilotId, held?.lastSignAt], [jobId, 1, 'p1', at(2)]);
      assert.equal(await store.markStalled(jobId as number, 2, at(100)), false, 'another attempt: untouched');
      assert.equal(await store.markStalled(jobId as number, 1, at(100)), true);
      const stalled = await store.getJob(jobId as number);
      assert.deepEqual(
        [stalled?.status, stalled?.minorStatus, stalled?.lastUpdateAt],
        ['Stalled', 'Application', at(2)],
      );
      await store.recordHeartbeat(jobId as number, 1, { cpuSec: 1, rssMB: 10, wallSec: 100 }, at(120));
      assert.equal((await store.getJob(jobId as number))?.status, 'Running');
    });

    it('rescheduling ends the attempt (kill queued, site released), holds the job, then it waits and is claimed again', async () => {
      const {
        jobIds: [jobId],
        taskQueueIds: [tqId],
      } = await store.submitJobs([newJob(alice)], T0);
      await store.claimFromTaskQueue(tqId as number, claimAt('p1'));
      assert.deepEqual(await store.runningAtSite('Site.A'), { User: 1 });
      const request = {
        at: at(10),
        reason: 'Job stalled: pilot not running',
        holdUntil: at(70),
        maxAttempts: 3,
        source: 'FaultSweeper',
        onLimit: 'fail' as const,
        allowFinished: false,
      };
      assert.deepEqual(await store.rescheduleJob(jobId as number, 2, request), { kind: 'stale', status: 'Matched' });
      assert.deepEqual(await store.rescheduleJob(jobId as number, 1, request), {
        kind: 'rescheduled',
        attempt: 2,
        holdUntil: at(70),
      });
      const job = await store.getJob(jobId as number);
      assert.deepEqual([job?.status, job?.attempt, job?.pilotId, job?.site], ['Rescheduled', 2, null, null]);
      assert.deepEqual(await store.runningAtSite('Site.A'), {});
      assert.deepEqual(await store.takePendingCommands(jobId as number, 1, at(11)), [
        { jobId, attempt: 1, command: 'kill' },
      ]);
      await assert.rejects(
        store.reportStatus(jobId as number, 1, { status: 'Done', at: at(12), source: 'Pilot' }),
        (error: unknown) => error instanceof PilothouseError && error.code === 'ATTEMPT_MISMATCH',
      );
      assert.deepEqual(await store.releaseRescheduled(at(69)), { jobs: 0, taskQueueIds: [] }, 'still held');
      assert.equal((await store.claimFromTaskQueue(tqId as number, claimAt('p2', 69))).job, null);
      assert.deepEqual(await store.releaseRescheduled(at(70)), { jobs: 1, taskQueueIds: [tqId] });
      const again = await store.claimFromTaskQueue(tqId as number, claimAt('p2', 71));
      assert.deepEqual([again.job?.id, again.job?.attempt, again.job?.pilotId], [jobId, 2, 'p2']);
      const history = await store.getJobHistory(jobId as number);
      assert.deepEqual(
        history.slice(-4).map((h) => [h.attempt, h.status, h.minorStatus]),
        [
          [1, 'Matched', 'Assigned'],
          [1, 'Rescheduled', 'Job stalled: pilot not running'],
          [2, 'Waiting', 'Job Rescheduled'],
          [2, 'Matched', 'Assigned'],
        ],
      );
    });

    it('the last allowed attempt is not rescheduled: Failed, with the reason', async () => {
      const {
        jobIds: [jobId],
        taskQueueIds: [tqId],
      } = await store.submitJobs([newJob(alice)], T0);
      await store.claimFromTaskQueue(tqId as number, claimAt('p1'));
      const outcome = await store.rescheduleJob(jobId as number, 1, {
        at: at(10),
        reason: 'Matched for more than 7200 sec',
        holdUntil: at(70),
        maxAttempts: 1,
        source: 'FaultSweeper',
        onLimit: 'fail' as const,
        allowFinished: false,
      });
      assert.deepEqual(outcome, { kind: 'failed' });
      const job = await store.getJob(jobId as number);
      assert.deepEqual(
        [job?.status, job?.minorStatus, job?.attempt],
        ['Failed', 'Matched for more than 7200 sec; maximum of reschedulings reached', 1],
      );
      assert.deepEqual(await store.runningAtSite('Site.A'), {});
    });
  });
}
