/**
 * The matcher's side of the site director, over real HTTP on a real SQLite store: the demand of queues
 * (from the task queues with the matching rules: cores, wall time, GPUs, tags and required tags, sites,
 * the site mask, VOs), pilot registration, batch-system statuses, listing with filters and paging, the
 * wrapper's output, batch secrets, and the pilot bundle with its sha256. Bad input is a 4xx naming the
 * field; nothing is half-written.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { QueueSlot } from '../../shared/protocol/site-director.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { queueSlot } from '../helpers/queue-slot.ts';

const slot = queueSlot;
const queue = (key: string, overrides: Partial<QueueSlot> = {}, place: Record<string, string> = {}) => ({
  key,
  vo: 'lab',
  site: 'LCG.A.test',
  ce: 'ce-a',
  queue: 'q',
  slot: slot(overrides),
  ...place,
});

let m: TestMatcher;
let alice: string;

before(async () => {
  m = await startTestMatcher();
  alice = await m.userToken('alice', 'lab');
  const bob = await m.userToken('bob', 'other');
  const jobs = [
    ...Array.from({ length: 10 }, () => ({ executable: 'true', requirements: { wallTimeSec: 1800 } })),
    ...Array.from({ length: 3 }, () => ({
      executable: 'true',
      requirements: { cores: { min: 4 }, wallTimeSec: 7200 },
    })),
    ...Array.from({ length: 2 }, () => ({
      executable: 'true',
      requirements: { gpus: { min: 1, models: ['A100'] }, tags: ['gpu'], wallTimeSec: 1800 },
    })),
    { executable: 'true', requirements: { sites: ['LCG.B.test'], wallTimeSec: 1800 } },
  ];
  assert.equal((await m.api('POST', '/api/jobs', { token: alice, json: jobs })).status, 201);
  assert.equal((await m.api('POST', '/api/jobs', { token: bob, json: { executable: 'true' } })).status, 201);
});
after(() => m.close());

async function demand(queues: object[]) {
  const response = await m.api('POST', '/api/queues/demand', { json: { queues } });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return new Map<string, any>(response.body.queues.map((q: { key: string }) => [q.key, q]));
}

describe('demand', () => {
  it('counts the waiting jobs a pilot of the queue could run, and the pilots they would keep busy', async () => {
    const answers = await demand([
      queue('8-cores'),
      queue('short', { wallTimeSec: 3600 }),
      queue('1-core', { cores: 1 }),
      queue('gpu', { cores: 4, gpus: 2, gpuModel: 'NVIDIA A100-SXM4-40GB', tags: ['gpu'], requiredTags: ['gpu'] }),
      queue('gpu-of-another-model', { gpus: 2, gpuModel: 'Tesla V100', tags: ['gpu'] }),
      queue('gpu-open-to-all', { gpus: 2, gpuModel: 'NVIDIA A100', tags: ['gpu'] }),
      queue('site-b', {}, { site: 'LCG.B.test' }),
      queue('other-vo', {}, { vo: 'other' }),
      queue('nobody', {}, { vo: 'empty-vo' }),
    ]);
    // 10 one-core jobs (8 to a pilot) + 3 four-core jobs (2 to a pilot): 2 + 2 = ceil(1.25 + 1.5) = 3.
    assert.deepEqual([answers.get('8-cores').waitingJobs, answers.get('8-cores').pilotsNeeded], [13, 3]);
    assert.equal(answers.get('8-cores').taskQueues, 2);
    assert.deepEqual(
      answers
        .get('8-cores')
        .topTaskQueues.map((tq: { waitingJobs: number; jobsPerPilot: number }) => [tq.waitingJobs, tq.jobsPerPilot]),
      [
        [10, 8],
        [3, 2],
      ],
    );
    assert.deepEqual(
      [answers.get('short').waitingJobs, answers.get('short').pilotsNeeded],
      [10, 2],
      'the 2-hour jobs do not fit',
    );
    assert.deepEqual([answers.get('1-core').waitingJobs, answers.get('1-core').pilotsNeeded], [10, 10]);
    assert.deepEqual(
      [answers.get('gpu').waitingJobs, answers.get('gpu').pilotsNeeded],
      [2, 1],
      'only tagged GPU jobs, two to a 2-GPU pilot',
    );
    assert.equal(answers.get('gpu-of-another-model').waitingJobs, 13, 'CPU jobs, but not the A100 ones');
    assert.equal(answers.get('gpu-open-to-all').waitingJobs, 15, 'without required tags, CPU jobs come too');
    assert.equal(answers.get('site-b').waitingJobs, 14, 'the job bound to LCG.B.test counts there only');
    assert.equal(answers.get('other-vo').waitingJobs, 1);
    assert.deepEqual([answers.get('nobody').waitingJobs, answers.get('nobody').pilotsNeeded], [0, 0]);
  });

  it('a banned site gets demand for Test jobs only', async () => {
    await m.api('POST', '/api/sites/LCG.A.test/ban', { json: { reason: 'downtime' } });
    try {
      const answers = await demand([queue('banned')]);
      assert.deepEqual([answers.get('banned').waitingJobs, answers.get('banned').siteBanned], [0, true]);
    } finally {
      await m.api('POST', '/api/sites/LCG.A.test/allow', { json: { reason: 'back' } });
    }
  });

  it("counts the director's pilots of each queue: waiting (or starting) and running", async () => {
    const register = await m.api('POST', '/api/pilots', {
      json: {
        director: 'sd1',
        pilots: ['p-w1', 'p-w2', 'p-r1'].map((stamp) => ({
          stamp,
          vo: 'lab',
          site: 'LCG.A.test',
          ce: 'ce-a',
          queue: 'counted',
          backend: 'slurm',
          backendRef: `ref-${stamp}`,
          submittedAt: new Date().toISOString(),
        })),
      },
    });
    assert.equal(register.status, 201);
    const pilotToken = await m.pilotToken('lab', 'LCG.A.test', 'p-r1');
    const { RawPilot } = await import('../helpers/raw-pilot.ts');
    const pilot = await RawPilot.connect(m.url, pilotToken, { stamp: 'p-r1', site: 'LCG.A.test' });
    try {
      const answers = await demand([queue('counted', {}, { queue: 'counted' })]);
      assert.deepEqual(answers.get('counted').pilots, { waiting: 2, running: 1, unknown: 0 });
    } finally {
      await pilot.close();
    }
  });

  it('refuses bad input with the field named, and anyone but a service administrator', async () => {
    const bad = await m.api('POST', '/api/queues/demand', { json: { queues: [queue('x', { cores: 0 })] } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'VALIDATION_FAILED');
    assert.equal(bad.body.error.field, 'queues.0.slot.cores');
    const unknown = await m.api('POST', '/api/queues/demand', { json: { queues: [{ ...queue('x'), extra: 1 }] } });
    assert.equal(unknown.body.error.field, 'queues.0.extra');
    const user = await m.api('POST', '/api/queues/demand', { token: alice, json: { queues: [] } });
    assert.equal(user.status, 403);
  });
});

describe('pilot records', () => {
  const registration = (stamp: string, extra: object = {}) => ({
    stamp,
    vo: 'lab',
    site: 'LCG.A.test',
    ce: 'ce-a',
    queue: 'long',
    backend: 'htcondor',
    backendRef: `1234.${stamp.slice(-1)}`,
    submittedAt: '2026-11-30T10:00:00.000Z',
    ...extra,
  });

  it('registers pilots once; a stamp of another pilot is a 409 and nothing of the request is written', async () => {
    const first = await m.api('POST', '/api/pilots', {
      json: { director: 'sd2', pilots: [registration('rec-1'), registration('rec-2')] },
    });
    assert.deepEqual(first.body, { registered: 2, alreadyRegistered: 0, conflicts: [] });
    const again = await m.api('POST', '/api/pilots', { json: { director: 'sd2', pilots: [registration('rec-1')] } });
    assert.equal(again.body.alreadyRegistered, 1);
    const conflict = await m.api('POST', '/api/pilots', {
      json: { director: 'sd3', pilots: [registration('rec-3'), registration('rec-1', { vo: 'other' })] },
    });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.error.code, 'PILOT_CONFLICT');
    assert.deepEqual(conflict.body.error.stamps, ['rec-1']);
    const bad = await m.api('POST', '/api/pilots', { json: { director: 'sd2', pilots: [registration('rec 4')] } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'pilots.0.stamp');
  });

  it("takes the batch systems' statuses, keeps the history and the output, and lists with filters and paging", async () => {
    const updates = await m.api('POST', '/api/pilots/status', {
      json: {
        updates: [
          {
            stamp: 'rec-1',
            status: 'Waiting',
            reason: 'idle in the CE queue',
            native: '1 (Idle)',
            exitCode: null,
            at: '2026-11-30T10:01:00.000Z',
            untrack: false,
          },
          {
            stamp: 'rec-2',
            status: 'Aborted',
            reason: 'held (code 13/2): no space',
            native: '5 (Held)',
            exitCode: null,
            at: '2026-11-30T10:01:00.000Z',
            untrack: true,
          },
          {
            stamp: 'ghost',
            status: 'Running',
            reason: '',
            native: '2',
            exitCode: null,
            at: '2026-11-30T10:01:00.000Z',
            untrack: false,
          },
        ],
      },
    });
    assert.deepEqual(updates.body, { applied: ['rec-1', 'rec-2'], unchanged: [], unknown: ['ghost'] });
    const missing = await m.api('GET', '/api/pilots/rec-2/output');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'PILOT_NOT_FOUND');
    assert.equal(
      (await m.api('PUT', '/api/pilots/rec-2/output', { json: { stdout: 'o', stderr: 'e', truncated: false } })).status,
      200,
    );
    assert.equal(
      (await m.api('PUT', '/api/pilots/ghost/output', { json: { stdout: '', stderr: '', truncated: false } })).status,
      404,
    );
    const output = await m.api('GET', '/api/pilots/rec-2/output');
    assert.deepEqual([output.body.stdout, output.body.stderr, output.body.status], ['o', 'e', 'Aborted']);

    const detail = await m.api('GET', '/api/pilots/rec-2');
    assert.deepEqual(
      detail.body.history.map((h: { status: string; native: string | null }) => [h.status, h.native]),
      [
        ['Submitted', null],
        ['Aborted', '5 (Held)'],
      ],
    );
    const listed = await m.api(
      'GET',
      '/api/pilots?director=sd2&status=Waiting,Aborted&perPage=1&page=2&sort=id&order=asc',
    );
    assert.equal(listed.body.total, 2);
    assert.deepEqual(
      listed.body.pilots.map((p: { id: string }) => p.id),
      ['rec-2'],
    );
    assert.equal(listed.headers.get('content-range'), 'pilots 1-1/2');
    const tracked = await m.api('GET', '/api/pilots?director=sd2&tracked=true');
    assert.deepEqual(
      tracked.body.pilots.map((p: { id: string }) => p.id),
      ['rec-1'],
    );
    const badQuery = await m.api('GET', '/api/pilots?status=Sleeping');
    assert.equal(badQuery.status, 400);
    assert.equal(badQuery.body.error.code, 'BAD_QUERY');
    assert.equal(badQuery.body.error.field, 'status.0');
  });

  it("a job administrator sees only their VO's pilots; users see none", async () => {
    const otherAdmin = await m.userToken('carol', 'other', ['JobAdministrator']);
    const listed = await m.api('GET', '/api/pilots?vo=lab', { token: otherAdmin });
    assert.equal(listed.body.total, 0);
    assert.equal((await m.api('GET', '/api/pilots/rec-1', { token: otherAdmin })).status, 404);
    assert.equal((await m.api('GET', '/api/pilots', { token: alice })).status, 403);
    const labAdmin = await m.userToken('dave', 'lab', ['JobAdministrator']);
    assert.ok((await m.api('GET', '/api/pilots', { token: labAdmin })).body.total >= 2);
  });
});

describe('secrets and the bundle', () => {
  it('mints one secret per stamp in one call; each is exchanged once, by its own stamp', async () => {
    const minted = await m.api('POST', '/api/auth/pilot-secrets', {
      json: { vo: 'lab', site: 'LCG.A.test', pilotStamps: ['s-1', 's-2', 's-3'] },
    });
    assert.equal(minted.status, 201);
    const secrets = minted.body.secrets as { pilotStamp: string; secret: string }[];
    assert.equal(new Set(secrets.map((s) => s.secret)).size, 3);
    const swapped = await m.api('POST', '/api/auth/pilot-token', {
      token: null,
      json: { pilotStamp: 's-2', secret: secrets[0]?.secret },
    });
    assert.equal(swapped.status, 401);
    const own = await m.api('POST', '/api/auth/pilot-token', {
      token: null,
      json: { pilotStamp: 's-3', secret: secrets[2]?.secret },
    });
    assert.equal(own.status, 200);
    const twice = await m.api('POST', '/api/auth/pilot-secrets', {
      json: { vo: 'lab', site: 'LCG.A.test', pilotStamps: ['d', 'd'] },
    });
    assert.equal(twice.status, 400);
    assert.equal(twice.body.error.field, 'pilotStamps');
  });

  it('serves dist/pilot.mjs with its sha256, without a token', async () => {
    const bytes = await readFile(fileURLToPath(new URL('../../dist/pilot.mjs', import.meta.url)));
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const info = await m.api('GET', '/api/pilot-bundle/info', { token: null });
    assert.deepEqual(info.body, { sha256, sizeBytes: bytes.length });
    const response = await fetch(`${m.url}/api/pilot-bundle`);
    assert.equal(response.headers.get('x-pilothouse-sha256'), sha256);
    assert.equal(
      createHash('sha256')
        .update(Buffer.from(await response.arrayBuffer()))
        .digest('hex'),
      sha256,
    );
  });

  it('a matcher without a bundle answers 503 PILOT_BUNDLE_UNAVAILABLE (retryable)', async () => {
    const bare = await startTestMatcher({ config: { pilotBundlePath: null } });
    try {
      const info = await bare.api('GET', '/api/pilot-bundle/info', { token: null });
      assert.equal(info.status, 503);
      assert.equal(info.body.error.code, 'PILOT_BUNDLE_UNAVAILABLE');
      assert.equal(info.body.error.retryable, true);
    } finally {
      await bare.close();
    }
  });
});
