/**
 * Two matchers on one PostgreSQL database (and one data directory, for their keys), pilots on one,
 * users on the other: what happens through replica A reaches a pilot connected to replica B at once,
 * through the cluster bus (LISTEN/NOTIFY), not at B's next task-queue refresh (set to a minute here so
 * that a refresh cannot be what delivers it) nor at the pilot's next heartbeat. And presence: which
 * replica holds a pilot, and a chore (the fault sweep) run by one replica at a time.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { dropSchema, freshSchemaName, PG_TEST_URL } from '../helpers/postgres.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';
import { waitFor } from '../helpers/wait.ts';
import { PgPresence, PG_PRESENCE_MIGRATIONS } from '../../matcher/cluster/pg-presence.ts';
import { PRESENCE_STALE_MS } from '../../matcher/cluster/presence.ts';
import type { Offer } from '../../matcher/matching/fit.ts';
import type { PilothouseError } from '../../shared/errors.ts';
import { applyPgMigrations, ensureSchema, openPgPool } from '../../matcher/store/postgres/pg-database.ts';

let a: TestMatcher;
let b: TestMatcher;
let dataDir: string;
let schema: string;

before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'ph-replicas-'));
  schema = freshSchemaName();
  const options = {
    dataDir,
    raw: { db: `${PG_TEST_URL}?schema=${schema}` },
    config: { taskQueueRefreshMs: 60_000, exchangeMaxFailures: 4 },
  };
  a = await startTestMatcher(options);
  b = await startTestMatcher(options);
});
after(async () => {
  await a.matcher.stop();
  await b.matcher.stop();
  await dropSchema(schema);
  await rm(dataDir, { recursive: true, force: true });
});

it(
  'replicas - a job submitted through A reaches a pilot parked on B at once, and A can kill it there',
  { timeout: 20_000 },
  async () => {
    const pilot = await RawPilot.connect(b.url, await b.pilotToken('local'), { stamp: 'on-b' });
    try {
      pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
      await pilot.next('parked');
      const submittedAt = performance.now();
      const submitted = await a.api('POST', '/api/jobs', { json: { executable: 'sleep', arguments: ['60'] } });
      assert.equal(submitted.status, 201);
      const match = await pilot.next('match');
      const latencyMs = performance.now() - submittedAt;
      assert.equal(match.job.jobId, submitted.body.jobIds[0]);
      assert.ok(latencyMs < 2_000, `pushed in ${latencyMs.toFixed(0)} ms (a refresh would take a minute)`);

      const jobId = match.job.jobId;
      pilot.send({ type: 'job.status', ref: 1, jobId, attempt: 1, at: new Date().toISOString(), status: 'Running' });
      await pilot.next('ack');
      const killed = await a.api('POST', `/api/jobs/${jobId}/kill`);
      assert.equal(killed.status, 200);
      const commands = await pilot.next('commands');
      assert.deepEqual(commands.commands, [{ jobId, attempt: 1, command: 'kill' }]);
    } finally {
      await pilot.close();
    }
  },
);

it(
  'replicas - offers of 8 jobs on A and on B fill each other never with the same job, and one job.statuses frame ends them',
  { timeout: 20_000 },
  async () => {
    const onA = await RawPilot.connect(a.url, await a.pilotToken('local'), { stamp: 'multi-a' });
    const onB = await RawPilot.connect(b.url, await b.pilotToken('local'), { stamp: 'multi-b' });
    try {
      const submitted = await a.api('POST', '/api/jobs', {
        json: Array.from({ length: 12 }, (_, i) => ({ executable: 'true', arguments: [String(i)] })),
      });
      assert.equal(submitted.status, 201);
      const takeAll = async (pilot: RawPilot) => {
        const frames = [await pilot.next('match')];
        while ((frames.at(-1)?.following ?? 0) > 0) frames.push(await pilot.next('match'));
        return frames.map((frame) => frame.job);
      };
      // Both offers race for the same 12 jobs on one database: claims of one replica skip the other's.
      onA.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources(8), maxJobs: 8 });
      onB.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources(8), maxJobs: 8 });
      const [jobsA, jobsB] = await Promise.all([takeAll(onA), takeAll(onB)]);
      const ids = [...jobsA, ...jobsB].map((job) => job.jobId);
      assert.equal(new Set(ids).size, ids.length, `no job twice: ${ids.join(',')}`);
      assert.equal(ids.length, 12, `every job matched once (A ${jobsA.length}, B ${jobsB.length})`);
      assert.ok(jobsA.length <= 8 && jobsB.length <= 8);
      const at = new Date().toISOString();
      onB.send({
        type: 'job.statuses',
        ref: 1,
        reports: jobsB.map((job) => ({
          jobId: job.jobId,
          attempt: job.attempt,
          at,
          status: 'Done' as const,
          exitCode: 0,
          earlier: [{ at, status: 'Running' as const }],
        })),
      });
      const ack = await onB.next('ack');
      assert.equal(ack.refused, undefined);
      for (const job of jobsB) assert.equal((await a.api('GET', `/api/jobs/${job.jobId}`)).body.status, 'Done');
      for (const job of jobsA) assert.equal((await a.api('GET', `/api/jobs/${job.jobId}`)).body.status, 'Matched');
    } finally {
      await onA.close();
      await onB.close();
    }
  },
);

it('replicas - a drain through A reaches a pilot connected to B', { timeout: 20_000 }, async () => {
  const pilot = await RawPilot.connect(b.url, await b.pilotToken('local'), { stamp: 'drained-on-b' });
  try {
    const drained = await a.api('POST', '/api/pilots/drained-on-b/drain', { json: { reason: 'downtime' } });
    assert.equal(drained.status, 200);
    assert.equal(drained.body.delivered, false, 'not connected to A');
    assert.equal((await pilot.next('drain')).reason, 'downtime');
  } finally {
    await pilot.close();
  }
});

it('replicas - a site allowed again through A lets B serve its parked pilots', { timeout: 20_000 }, async () => {
  await a.api('POST', '/api/sites/Site.Masked/ban', { json: { reason: 'downtime' } });
  await b.matcher.matchService.refresh();
  const pilot = await RawPilot.connect(b.url, await b.pilotToken('local'), {
    stamp: 'masked-on-b',
    site: 'Site.Masked',
  });
  try {
    await a.api('POST', '/api/jobs', { json: { executable: 'true' } });
    pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    await pilot.next('parked');
    await a.api('POST', '/api/sites/Site.Masked/allow', { json: { reason: 'back' } });
    assert.ok((await pilot.next('match')).job.jobId > 0);
  } finally {
    await pilot.close();
  }
});

it(
  'replicas - a task queue paused through A is skipped by B; resumed through A, B serves its parked pilot',
  { timeout: 20_000 },
  async () => {
    const submitted = await a.api('POST', '/api/jobs', {
      json: { executable: 'true', requirements: { sites: ['Site.Paused'] } },
    });
    const jobId = submitted.body.jobIds[0] as number;
    const tq = (await a.api('GET', `/api/jobs/${jobId}`)).body.taskQueueId as number;
    // B has heard of the job (it would push it to a parked pilot) before the pause.
    await waitFor(async () => b.matcher.matchService.index.get(tq)?.waitingJobs === 1, 'B indexing the job');
    assert.equal((await a.api('POST', `/api/task-queues/${tq}/pause`, { json: { reason: 'hold on' } })).status, 200);
    const pilot = await RawPilot.connect(b.url, await b.pilotToken('local'), {
      stamp: 'paused-on-b',
      site: 'Site.Paused',
    });
    try {
      pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
      await pilot.next('parked');
      assert.equal((await b.api('GET', `/api/jobs/${jobId}`)).body.status, 'Waiting');
      assert.equal((await a.api('POST', `/api/task-queues/${tq}/resume`)).status, 200);
      assert.equal((await pilot.next('match')).job.jobId, jobId);
    } finally {
      await pilot.close();
    }
  },
);
it(
  'replicas - a policy published by one replica is applied by the others at once, and kept for those that start later',
  { timeout: 20_000 },
  async () => {
    const options = {
      dataDir,
      raw: { db: `${PG_TEST_URL}?schema=${schema}` },
      config: { taskQueueRefreshMs: 60_000 },
    };
    const limited = { runningLimits: [{ site: 'Site.Limited', jobType: 'User', maxRunning: 0 }] };
    const publisher = await startTestMatcher({ ...options, policy: { raw: limited, source: 'policy.json' } });
    let later: TestMatcher | undefined;
    try {
      const published = (await publisher.api('GET', '/api/policy')).body;
      assert.equal(published.appliedVersion, published.version);
      assert.deepEqual(published.policy.runningLimits, limited.runningLimits);
      assert.equal(published.updatedBy, 'file policy.json');
      // B's own refresh is a minute away: only the bus can have told it.
      await waitFor(
        async () => (await b.api('GET', '/api/policy')).body.appliedVersion === published.version || undefined,
        'B applies the published policy',
        5_000,
      );
      const [jobId] = (await b.api('POST', '/api/jobs', { json: { executable: 'true' } })).body.jobIds as number[];
      const explainLimit = async () => {
        const explained = await b.api('POST', `/api/jobs/${jobId}/explain`, {
          json: { targets: [{ site: 'Site.Limited', resources: resources() }] },
        });
        return explained.body.verdicts[0].checks.find((c: { requirement: string }) => c.requirement === 'runningLimit');
      };
      assert.deepEqual(await explainLimit(), {
        requirement: 'runningLimit',
        pass: false,
        reason: '0 User job(s) held at Site.Limited, limit 0',
      });
      // A change over the API on the publisher: B applies it within a second, again by the bus alone.
      const raised = await publisher.api('PUT', '/api/policy/running-limits/Site.Limited/User', {
        json: { maxRunning: 5 },
      });
      assert.equal(raised.status, 200);
      assert.equal(raised.body.version, published.version + 1);
      await waitFor(
        async () => (await b.api('GET', '/api/policy')).body.appliedVersion === raised.body.version || undefined,
        'B applies the API change within a second',
        1_000,
      );
      assert.equal((await explainLimit()).reason, '0 User job(s) held at Site.Limited, limit 5');
      await b.api('POST', `/api/jobs/${jobId}/kill`);
      // A replica started later without a policy applies the stored one.
      later = await startTestMatcher(options);
      assert.equal((await later.api('GET', '/api/policy')).body.appliedVersion, raised.body.version);
    } finally {
      await publisher.matcher.stop();
      await later?.matcher.stop();
    }
  },
);

it(
  'replicas - fair share counts the matches of every replica: a group served on B is behind on A',
  { timeout: 30_000 },
  async () => {
    // A schema of its own: the policy published here must not reach the other cases' replicas.
    const shareSchema = freshSchemaName();
    const options = {
      dataDir,
      raw: { db: `${PG_TEST_URL}?schema=${shareSchema}` },
      // Only the explicit syncs below exchange usage, so the figures cannot depend on timing.
      config: { taskQueueRefreshMs: 60_000, shareSyncIntervalMs: 3_600_000 },
    };
    const policy = { groups: { prod: { share: 3000 }, user: { share: 1000 } } };
    const one = await startTestMatcher({ ...options, policy: { raw: policy, source: 'policy.json' } });
    const two = await startTestMatcher(options);
    const offer = (tags: string[]): Offer => ({
      vo: 'vo-a',
      site: 'Site.A',
      ce: 'ce',
      queue: 'q',
      resources: { cores: 1, memoryMB: 4000, wallTimeSec: null, tags },
    });
    const groupsOf = async (replica: TestMatcher, tags: string[], count: number) => {
      const groups: string[] = [];
      for (let i = 0; i < count; i += 1) {
        const match = await replica.matcher.matchService.findMatch(offer(tags), `pilot-${i}`);
        groups.push(match?.job.group ?? 'none');
      }
      return groups;
    };
    const submit = async (group: string, tags: string[], count: number) => {
      const token = await one.userToken(group, 'vo-a', ['NormalUser'], group);
      const jobs = Array.from({ length: count }, () => ({ executable: 'true', requirements: { tags } }));
      const submitted = await one.api('POST', '/api/jobs', { token, json: jobs });
      assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
    };
    try {
      // prod's jobs need big nodes, which only pilots on `one` offer; user's run anywhere.
      await submit('prod', ['big'], 100);
      await submit('user', [], 100);
      await two.matcher.matchService.refresh();
      assert.deepEqual(new Set(await groupsOf(two, [], 40)), new Set(['user']), 'two serves only user');
      await two.matcher.matchService.syncShares();
      await one.matcher.matchService.syncShares();
      // user had 40 cores and prod none: prod (share 3) is served alone until it has 3 × 40. A replica
      // that counted only its own matches would give user one match in four here.
      const onOne = await groupsOf(one, ['big'], 20);
      assert.deepEqual(onOne, Array(20).fill('prod'), onOne.join(' '));
      // A replica started now counts usage from now on: no history to catch up with.
      const later = await startTestMatcher(options);
      try {
        const fresh = await groupsOf(later, ['big'], 8);
        assert.deepEqual(
          fresh.filter((g) => g === 'prod').length,
          6,
          `3:1 from the start on the new replica: ${fresh.join(' ')}`,
        );
      } finally {
        await later.matcher.stop();
      }
    } finally {
      await one.matcher.stop();
      await two.matcher.stop();
      await dropSchema(shareSchema);
    }
  },
);

it('replicas - a replica given a data directory of its own refuses to start, naming the fix', async () => {
  const health = async (replica: TestMatcher) => (await replica.api('GET', '/healthz', { token: null })).body;
  const [healthA, healthB] = [await health(a), await health(b)];
  assert.equal(healthA.cluster, healthB.cluster, 'one cluster');
  assert.notEqual(healthA.replica, healthB.replica, 'two replicas');
  assert.equal((await readFile(path.join(dataDir, 'cluster-id'), 'utf8')).trim(), healthA.cluster);

  const ownDir = await mkdtemp(path.join(os.tmpdir(), 'ph-own-dir-'));
  const options = { dataDir: ownDir, raw: { db: `${PG_TEST_URL}?schema=${schema}` } };
  try {
    await assert.rejects(startTestMatcher(options), (error: PilothouseError) => {
      assert.equal(error.code, 'CONFIG_INVALID');
      assert.match(error.message, new RegExp(`cluster ${healthA.cluster} but .*cluster-id is missing`));
      assert.match(error.message, /--data-dir/);
      return true;
    });
    assert.deepEqual(await readdir(ownDir), [], 'the refused start left no cluster-id behind');
    await writeFile(path.join(ownDir, 'cluster-id'), 'another-cluster\n');
    await assert.rejects(startTestMatcher(options), /holds cluster another-cluster/);
  } finally {
    await rm(ownDir, { recursive: true, force: true });
  }
});

it('replicas - failed pilot-token exchanges through A and B count against one budget', async () => {
  const exchange = (replica: TestMatcher, attempt: number) =>
    replica.api('POST', '/api/auth/pilot-token', {
      token: null,
      json: { pilotStamp: 'guessing', secret: `phps_${String(attempt % 10).repeat(43)}` },
    });
  // Two failures on each replica: under the budget of either alone, at the budget of the cluster.
  for (const [attempt, replica] of [a, b, a, b].entries()) {
    const refused = await exchange(replica, attempt);
    assert.equal(refused.body.error.code, 'PILOT_SECRET_INVALID', `try ${attempt}`);
  }
  for (const replica of [a, b]) {
    const limited = await exchange(replica, 9);
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error.code, 'RATE_LIMITED');
  }
});

it(
  'replicas - presence: a pilot counts as connected while its replica beats; a chore runs on one replica at a time',
  { timeout: 20_000 },
  async () => {
    const presenceSchema = freshSchemaName();
    const pool = openPgPool({ url: PG_TEST_URL, schema: presenceSchema, maxConnections: 4 });
    try {
      await ensureSchema(pool, presenceSchema);
      await applyPgMigrations(pool, 'presence', PG_PRESENCE_MIGRATIONS);
      const clock = {
        ms: Date.parse('2026-01-01T00:00:00Z'),
        nowMs() {
          return this.ms;
        },
      };
      const one = await PgPresence.start(pool, clock);
      const two = await PgPresence.start(pool, clock);
      await one.pilotArrived('p1');
      assert.equal(await two.pilotConnected('p1'), true);
      clock.ms += PRESENCE_STALE_MS + 1;
      await two.beat();
      assert.equal(await two.pilotConnected('p1'), false, 'replica one stopped beating: its pilots are gone');
      await one.beat();
      assert.equal(await two.pilotConnected('p1'), true);
      // The pilot reconnected to replica two; replica one's late goodbye does not erase that.
      await two.pilotArrived('p1');
      await one.pilotLeft('p1');
      assert.equal(await one.pilotConnected('p1'), true);
      await two.pilotLeft('p1');
      assert.equal(await one.pilotConnected('p1'), false);

      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let started!: () => void;
      const running = new Promise<void>((resolve) => (started = resolve));
      const first = one.runExclusive('sweep', async () => {
        started();
        await held;
      });
      await running;
      let ranTwice = false;
      assert.equal(await two.runExclusive('sweep', async () => void (ranTwice = true)), false);
      assert.equal(ranTwice, false, 'skipped while the other replica sweeps');
      release();
      assert.equal(await first, true);
      assert.equal(await two.runExclusive('sweep', async () => void (ranTwice = true)), true);
      assert.equal(ranTwice, true);
      await one.close();
      await two.close();
    } finally {
      await pool.end();
      await dropSchema(presenceSchema);
    }
  },
);
