/**
 * The schedules API on a real matcher: creation from JSON and from a JDL body, the next five fire
 * times, refusals that name the field, the minimum interval, who sees and steers a schedule, pause,
 * resume, delete and runs. Then two replicas on one PostgreSQL database and one schedule firing every
 * second: each slot makes exactly one job, whichever replica fired it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { dropSchema, freshSchemaName, PG_TEST_URL } from '../helpers/postgres.ts';
import { waitFor } from '../helpers/wait.ts';

const JOB = { executable: '/bin/echo', arguments: ['tick'] };

describe('schedules API', () => {
  let m: TestMatcher;
  let alice: string;
  let bob: string;
  let jobAdmin: string;
  before(async () => {
    m = await startTestMatcher({ raw: { scheduleMinIntervalSec: 60 } });
    alice = await m.userToken('alice');
    bob = await m.userToken('bob');
    jobAdmin = await m.userToken('judy', 'vo-a', ['NormalUser', 'JobAdministrator']);
  });
  after(() => m.close());

  it('creates a schedule from JSON and shows its next five fire times', async () => {
    const created = await m.api('POST', '/api/schedules', {
      token: alice,
      json: { cron: '0 3 * * *', timeZone: 'Europe/Paris', job: JOB, name: 'nightly fetch' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const schedule = created.body;
    assert.deepEqual(
      {
        owner: schedule.owner,
        vo: schedule.vo,
        overlap: schedule.overlap,
        catchUp: schedule.catchUp,
        state: schedule.state,
        timeZone: schedule.timeZone,
      },
      { owner: 'alice', vo: 'vo-a', overlap: 'skip', catchUp: 'none', state: 'active', timeZone: 'Europe/Paris' },
    );
    assert.equal(schedule.nextFireTimes.length, 5);
    assert.equal(schedule.nextFireTimes[0], schedule.nextFireAt);
    for (const time of schedule.nextFireTimes) {
      const local = new Intl.DateTimeFormat('en-GB', {
        timeZone: 'Europe/Paris',
        hour: '2-digit',
        minute: '2-digit',
      }).format(new Date(time));
      assert.equal(local, '03:00', `${time} is 03:00 in Paris`);
    }
    const read = await m.api('GET', `/api/schedules/${schedule.id}`, { token: alice });
    assert.deepEqual(read.body.nextFireTimes, schedule.nextFireTimes);
  });

  it('creates a schedule from a JDL body with its fields in the query string (parametric: several jobs per run)', async () => {
    const jdl = `Executable = "/bin/echo"; Arguments = "%s"; Parameters = {"a", "b", "c"};`;
    const created = await m.api('POST', '/api/schedules?cron=*/5%20*%20*%20*%20*&overlap=allow&maxRuns=3', {
      token: alice,
      body: jdl,
      contentType: 'text/x-jdl',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(
      [
        created.body.overlap,
        created.body.maxRuns,
        created.body.jobs.map((job: { arguments: string[] }) => job.arguments),
      ],
      ['allow', 3, [['a'], ['b'], ['c']]],
    );
  });

  it('refuses bad input with an error that names the field', async () => {
    const cases: [unknown, string, string][] = [
      [{ cron: '61 * * * *', job: JOB }, 'CRON_INVALID', 'cron'],
      [{ cron: '* * *', job: JOB }, 'CRON_INVALID', 'cron'],
      [{ cron: '0 * * * *', timeZone: 'Europe/Atlantis', job: JOB }, 'CRON_INVALID', 'timeZone'],
      [{ cron: '0 * * * *', overlap: 'queue', job: JOB }, 'VALIDATION_FAILED', 'overlap'],
      [{ cron: '0 * * * *', catchUp: 'all', job: JOB }, 'VALIDATION_FAILED', 'catchUp'],
      [
        { cron: '0 * * * *', job: { executable: '/bin/true', requirments: {} } },
        'VALIDATION_FAILED',
        'job.requirments',
      ],
      [{ cron: '0 * * * *' }, 'VALIDATION_FAILED', 'job'],
      [{ job: JOB }, 'VALIDATION_FAILED', 'cron'],
      [{ cron: '0 * * * *', job: JOB, maxRuns: 0 }, 'VALIDATION_FAILED', 'maxRuns'],
      [{ cron: '0 * * * *', job: JOB, startAt: 'tomorrow' }, 'VALIDATION_FAILED', 'startAt'],
      [
        { cron: '0 * * * *', job: JOB, startAt: '2030-01-02T00:00:00Z', endAt: '2030-01-01T00:00:00Z' },
        'VALIDATION_FAILED',
        'endAt',
      ],
      [{ cron: '0 * * * *', job: { jdl: 'Executable = ' } }, 'JDL_INVALID', 'job.jdl'],
      [
        { cron: '0 * * * *', job: { executable: '/bin/true', inputSandbox: [`sha256:${'0'.repeat(64)}`] } },
        'VALIDATION_FAILED',
        'job.inputSandbox[0]',
      ],
      // Fires every 30 s at times (minutes 0 and 0:30 of each hour) while this matcher allows one per 60 s.
      [{ cron: '0,30 0 * * * *', job: JOB }, 'SCHEDULE_TOO_FREQUENT', 'cron'],
      [{ cron: '*/10 * * * * *', job: JOB }, 'SCHEDULE_TOO_FREQUENT', 'cron'],
    ];
    for (const [json, code, field] of cases) {
      const refused = await m.api('POST', '/api/schedules', { token: alice, json });
      assert.equal(refused.status, 400, `${JSON.stringify(json)} → ${JSON.stringify(refused.body)}`);
      assert.deepEqual([refused.body.error.code, refused.body.error.field], [code, field], JSON.stringify(json));
    }
    const jdlField = await m.api('POST', '/api/schedules?cron=0%20*%20*%20*%20*&catchUp=every', {
      token: alice,
      body: 'Executable = "/bin/true";',
      contentType: 'text/x-jdl',
    });
    assert.deepEqual([jdlField.status, jdlField.body.error.field], [400, 'catchUp']);
    const text = await m.api('POST', '/api/schedules', { token: alice, body: 'cron', contentType: 'text/plain' });
    assert.equal(text.body.error.code, 'UNSUPPORTED_MEDIA_TYPE');
    const none = await m.api('GET', '/api/schedules', { token: alice });
    assert.ok(
      none.body.schedules.every((s: { cron: string }) => !s.cron.includes('61')),
      'nothing half-made',
    );
  });

  it('is seen and steered by its owner and job administrators of its VO, not by other users', async () => {
    const created = await m.api('POST', '/api/schedules', { token: alice, json: { cron: '0 4 * * *', job: JOB } });
    const id = created.body.id as number;
    for (const [method, suffix] of [
      ['GET', ''],
      ['GET', '/runs'],
      ['POST', '/pause'],
      ['POST', '/resume'],
      ['DELETE', ''],
    ] as const) {
      const refused = await m.api(method, `/api/schedules/${id}${suffix}`, { token: bob });
      assert.deepEqual([refused.status, refused.body.error.code], [404, 'SCHEDULE_NOT_FOUND'], `${method} ${suffix}`);
    }
    const bobs = await m.api('GET', '/api/schedules', { token: bob });
    assert.ok(!bobs.body.schedules.some((s: { id: number }) => s.id === id));
    const judys = await m.api('GET', '/api/schedules', { token: jobAdmin });
    assert.ok(judys.body.schedules.some((s: { id: number }) => s.id === id));

    const paused = await m.api('POST', `/api/schedules/${id}/pause`, { token: jobAdmin });
    assert.deepEqual([paused.status, paused.body.state, paused.body.nextFireTimes], [200, 'paused', []]);
    const resumed = await m.api('POST', `/api/schedules/${id}/resume`, { token: alice });
    assert.deepEqual([resumed.body.state, resumed.body.nextFireTimes.length], ['active', 5]);
    const runs = await m.api('GET', `/api/schedules/${id}/runs?limit=5`, { token: alice });
    assert.deepEqual([runs.status, runs.body.runs], [200, []]);
    const badLimit = await m.api('GET', `/api/schedules/${id}/runs?limit=0`, { token: alice });
    assert.deepEqual([badLimit.status, badLimit.body.error.field], [400, 'limit']);
    const deleted = await m.api('DELETE', `/api/schedules/${id}`, { token: alice });
    assert.deepEqual(deleted.body, { scheduleId: id, deleted: true });
    assert.equal((await m.api('GET', `/api/schedules/${id}`, { token: alice })).status, 404);
    assert.equal((await m.api('GET', '/api/schedules/abc', { token: alice })).body.error.field, 'id');
  });
});

describe('schedules API on a matcher with its defaults', () => {
  it("takes the issue's own example: every 5 s in Europe/Paris, overlap skip, catch-up none", async () => {
    const m = await startTestMatcher();
    try {
      const body = {
        cron: '*/5 * * * * *',
        timeZone: 'Europe/Paris',
        job: JOB,
        overlap: 'skip',
        catchUp: 'none',
      };
      const created = await m.api('POST', '/api/schedules', { json: body });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const gaps = (created.body.nextFireTimes as string[]).slice(1).map((time, i) => {
        return Date.parse(time) - Date.parse(created.body.nextFireTimes[i]);
      });
      assert.deepEqual(gaps, [5000, 5000, 5000, 5000]);
      const faster = await m.api('POST', '/api/schedules', { json: { ...body, cron: '*/4 * * * * *' } });
      assert.equal(faster.body.error.code, 'SCHEDULE_TOO_FREQUENT');
    } finally {
      await m.close();
    }
  });
});

describe('schedules on two replicas (PostgreSQL)', () => {
  let a: TestMatcher;
  let b: TestMatcher;
  let dataDir: string;
  let schema: string;
  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'ph-schedule-replicas-'));
    schema = freshSchemaName();
    const options = { dataDir, raw: { db: `${PG_TEST_URL}?schema=${schema}`, scheduleMinIntervalSec: 1 } };
    a = await startTestMatcher(options);
    b = await startTestMatcher(options);
  });
  after(async () => {
    await a.matcher.stop();
    await b.matcher.stop();
    await dropSchema(schema);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('one schedule firing every second makes exactly one job per slot', { timeout: 30_000 }, async () => {
    const created = await a.api('POST', '/api/schedules', {
      json: { cron: '* * * * * *', overlap: 'allow', job: JOB, maxRuns: 8 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as number;
    await waitFor(
      async () => (await b.api('GET', `/api/schedules/${id}`)).body.state === 'ended',
      'eight runs',
      20_000,
    );
    const runs = (await b.api('GET', `/api/schedules/${id}/runs`)).body.runs as {
      slotAt: string;
      outcome: string;
      jobIds: number[];
    }[];
    assert.equal(runs.length, 8, JSON.stringify(runs));
    assert.ok(runs.every((run) => run.outcome === 'submitted' && run.jobIds.length === 1));
    const search = await a.api('POST', '/api/jobs/search', { json: { perPage: 100 } });
    const mine = (search.body.jobs as { scheduleId?: number; scheduleSlot?: string }[]).filter(
      (job) => job.scheduleId === id,
    );
    assert.equal(mine.length, 8);
    assert.equal(new Set(mine.map((job) => job.scheduleSlot)).size, 8, 'one job per slot');
  });
});
