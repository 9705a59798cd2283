/**
 * One behavioural suite for every PilotStore implementation: registration by a site director, the
 * merge of batch-system and pilot reports, history, search, per-queue counts, output, reports.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { PilotStore } from '../../matcher/store/pilot-store.ts';
import type { PilotRegistration, PilotStatusUpdate } from '../../shared/protocol/site-director.ts';

const T0 = '2026-01-01T00:00:00.000Z';
const at = (seconds: number): string => new Date(Date.parse(T0) + seconds * 1000).toISOString();
const node = { hostname: 'wn1', cores: 8, memoryMB: 16_000, os: 'linux', arch: 'x86_64', cpuModel: 'cpu' };

const registration = (stamp: string, extra: Partial<PilotRegistration> = {}): PilotRegistration => ({
  stamp,
  vo: 'vo-a',
  site: 'Site.A',
  ce: 'ce1',
  queue: 'long',
  backend: 'slurm',
  backendRef: `ref-${stamp}`,
  submittedAt: T0,
  ...extra,
});
const update = (stamp: string, status: PilotStatusUpdate['status'], extra: Partial<PilotStatusUpdate> = {}) => ({
  stamp,
  status,
  reason: `backend says ${status}`,
  native: status.toUpperCase(),
  exitCode: null,
  at: at(10),
  untrack: false,
  ...extra,
});
const hello = (id: string, seconds: number) => ({
  id,
  vo: 'vo-a',
  site: 'Site.A',
  ce: 'ce1',
  queue: 'long',
  node,
  pilotVersion: '0.1.0',
  at: at(seconds),
});

export function pilotStoreSuite(name: string, openStore: () => Promise<PilotStore>): void {
  describe(`PilotStore conformance: ${name}`, () => {
    let store: PilotStore;
    beforeEach(async () => {
      store = await openStore();
    });
    afterEach(async () => {
      await store.close();
    });

    it('a registered pilot is Submitted and tracked; registering it again changes nothing', async () => {
      const first = await store.registerPilots('sd1', [registration('p1'), registration('p2')], T0);
      assert.deepEqual(first, { registered: 2, alreadyRegistered: 0, conflicts: [] });
      const again = await store.registerPilots('sd1', [registration('p1')], at(1));
      assert.deepEqual(again, { registered: 0, alreadyRegistered: 1, conflicts: [] });
      const pilot = await store.getPilot('p1');
      assert.equal(pilot?.status, 'Submitted');
      assert.equal(pilot?.director, 'sd1');
      assert.equal(pilot?.backendRef, 'ref-p1');
      assert.equal(pilot?.tracked, true);
      assert.equal(pilot?.connected, false);
      assert.deepEqual(
        (await store.getHistory('p1')).map((h) => [h.status, h.source]),
        [['Submitted', 'director']],
      );
    });

    it('a stamp of another pilot is a conflict and is not overwritten', async () => {
      await store.registerPilots('sd1', [registration('p1')], T0);
      const outcome = await store.registerPilots('sd2', [registration('p1', { backendRef: 'other' })], at(1));
      assert.deepEqual(outcome.conflicts, ['p1']);
      assert.equal((await store.getPilot('p1'))?.backendRef, 'ref-p1');
      const otherVo = await store.registerPilots('sd1', [registration('p1', { vo: 'vo-b' })], at(1));
      assert.deepEqual(otherVo.conflicts, ['p1']);
    });

    it('status only moves forward: a lagging batch system cannot take a Running pilot back to Waiting', async () => {
      await store.registerPilots('sd1', [registration('p1')], T0);
      assert.deepEqual((await store.applyBackendUpdates([update('p1', 'Waiting')])).applied, ['p1']);
      await store.recordHello(hello('p1', 20));
      const lagging = await store.applyBackendUpdates([update('p1', 'Waiting', { at: at(21) })]);
      assert.deepEqual(lagging.unchanged, ['p1']);
      const pilot = await store.getPilot('p1');
      assert.equal(pilot?.status, 'Running');
      assert.equal(pilot?.connected, true);
      assert.deepEqual(pilot?.node, node);
    });

    it("the batch system's final word refines the pilot's own bye (Done → Failed for memory)", async () => {
      await store.registerPilots('sd1', [registration('p1')], T0);
      await store.recordHello(hello('p1', 5));
      await store.recordBye('p1', 'idle', at(30));
      assert.equal((await store.getPilot('p1'))?.status, 'Done');
      await store.applyBackendUpdates([
        update('p1', 'Failed', { reason: 'killed for exceeding its memory', native: 'OUT_OF_MEMORY', exitCode: 137 }),
      ]);
      const pilot = await store.getPilot('p1');
      assert.equal(pilot?.status, 'Failed');
      assert.equal(pilot?.statusReason, 'killed for exceeding its memory');
      assert.equal(pilot?.exitCode, 137);
      // Once the batch system gave its final word, nothing changes it any more.
      await store.applyBackendUpdates([update('p1', 'Done', { at: at(40) })]);
      assert.equal((await store.getPilot('p1'))?.status, 'Failed');
      assert.deepEqual(
        (await store.getHistory('p1')).map((h) => [h.status, h.source]),
        [
          ['Submitted', 'director'],
          ['Running', 'pilot'],
          ['Done', 'pilot'],
          ['Failed', 'backend'],
        ],
      );
    });

    it('Unknown never hides a connected pilot; Lost gives way to real news', async () => {
      await store.registerPilots('sd1', [registration('p1'), registration('p2')], T0);
      await store.recordHello(hello('p1', 5));
      await store.applyBackendUpdates([update('p1', 'Unknown'), update('p2', 'Unknown')]);
      assert.equal((await store.getPilot('p1'))?.status, 'Running');
      assert.equal((await store.getPilot('p2'))?.status, 'Unknown');
      await store.applyBackendUpdates([update('p2', 'Lost', { untrack: true })]);
      const lost = await store.getPilot('p2');
      assert.equal(lost?.status, 'Lost');
      assert.equal(lost?.tracked, false);
      await store.recordHello(hello('p2', 50));
      assert.equal((await store.getPilot('p2'))?.status, 'Running');
    });

    it('a pilot started by hand has a record from its hello; a disconnect is remembered', async () => {
      await store.recordHello(hello('hand', 1));
      await store.recordDisconnect('hand', at(2));
      const pilot = await store.getPilot('hand');
      assert.equal(pilot?.status, 'Running');
      assert.equal(pilot?.connected, false);
      assert.equal(pilot?.director, null);
      assert.deepEqual(
        (await store.getHistory('hand')).map((h) => h.reason),
        ['connected', 'disconnected'],
      );
      assert.equal(await store.getPilot('nope'), null);
    });

    it('a pilot that said hello before its director registered it is adopted, not duplicated', async () => {
      await store.recordHello(hello('fast', 1));
      const outcome = await store.registerPilots('sd1', [registration('fast')], at(2));
      assert.equal(outcome.registered, 1);
      const pilot = await store.getPilot('fast');
      assert.equal(pilot?.status, 'Running');
      assert.equal(pilot?.director, 'sd1');
      assert.equal(pilot?.tracked, true);
      assert.equal(pilot?.createdAt, T0);
    });

    it('updates for unknown stamps are reported, not invented', async () => {
      const outcome = await store.applyBackendUpdates([update('ghost', 'Running')]);
      assert.deepEqual(outcome.unknown, ['ghost']);
      assert.equal(await store.getPilot('ghost'), null);
    });

    it('active pilots are counted per queue and VO; ended ones are not', async () => {
      await store.registerPilots(
        'sd1',
        [
          registration('w1'),
          registration('w2'),
          registration('r1'),
          registration('d1'),
          registration('x1', { queue: 'short' }),
          registration('y1', { vo: 'vo-b' }),
        ],
        T0,
      );
      await store.recordHello(hello('r1', 3));
      // w2 runs at its CE but has not reached the matcher: it is still starting, counted as waiting.
      await store.applyBackendUpdates([update('w2', 'Running'), update('d1', 'Done')]);
      const key = { vo: 'vo-a', site: 'Site.A', ce: 'ce1', queue: 'long' };
      const counts = await store.countActive([key, { ...key, queue: 'short' }, { ...key, queue: 'none' }]);
      assert.deepEqual(
        [...counts.values()],
        [
          { waiting: 2, running: 1, unknown: 0 },
          { waiting: 1, running: 0, unknown: 0 },
          { waiting: 0, running: 0, unknown: 0 },
        ],
      );
    });

    it('search filters by place, status, director, tracking and time, newest first, paged', async () => {
      await store.registerPilots('sd1', [registration('a1', { submittedAt: at(1) })], T0);
      await store.registerPilots('sd1', [registration('a2', { submittedAt: at(2), queue: 'short' })], T0);
      await store.registerPilots('sd2', [registration('a3', { submittedAt: at(3), site: 'Site.B' })], T0);
      await store.applyBackendUpdates([update('a1', 'Done', { untrack: true })]);
      const base = { sort: { field: 'createdAt', direction: 'desc' }, page: 1, perPage: 10 } as const;
      assert.deepEqual(
        (await store.searchPilots(base)).pilots.map((p) => p.id),
        ['a3', 'a2', 'a1'],
      );
      assert.deepEqual(
        (await store.searchPilots({ ...base, sites: ['Site.A'], statuses: ['Submitted'] })).pilots.map((p) => p.id),
        ['a2'],
      );
      assert.deepEqual(
        (await store.searchPilots({ ...base, directors: ['sd1'], tracked: true })).pilots.map((p) => p.id),
        ['a2'],
      );
      assert.deepEqual(
        (await store.searchPilots({ ...base, createdAfter: at(2), createdBefore: at(3) })).pilots.map((p) => p.id),
        ['a2'],
      );
      assert.deepEqual((await store.searchPilots({ ...base, statuses: [] })).total, 0);
      const page2 = await store.searchPilots({ ...base, perPage: 2, page: 2 });
      assert.equal(page2.total, 3);
      assert.deepEqual(
        page2.pilots.map((p) => p.id),
        ['a1'],
      );
    });

    it('output is stored per pilot (replaced when fetched again); unknown pilots get none', async () => {
      await store.registerPilots('sd1', [registration('p1')], T0);
      assert.equal(await store.storeOutput('p1', { stdout: 'one', stderr: '', truncated: false }, at(1)), true);
      assert.equal(await store.storeOutput('p1', { stdout: 'two', stderr: 'err', truncated: true }, at(2)), true);
      assert.deepEqual(await store.getOutput('p1'), {
        stdout: 'two',
        stderr: 'err',
        truncated: true,
        fetchedAt: at(2),
      });
      assert.equal((await store.getPilot('p1'))?.hasOutput, true);
      assert.equal(await store.storeOutput('ghost', { stdout: '', stderr: '', truncated: false }, at(1)), false);
      assert.equal(await store.getOutput('ghost'), null);
    });

    it('a director report replaces its previous one', async () => {
      const report = (cycle: number) => ({
        director: 'sd1',
        cycle,
        startedAt: at(cycle),
        durationMs: 12,
        matcherReachable: true,
        queues: [],
        ces: [],
        pilotsTracked: 0,
        statusUpdates: 0,
        outputsFetched: 0,
      });
      await store.saveDirectorReport(report(1), at(1));
      await store.saveDirectorReport(report(2), at(2));
      const reports = await store.directorReports();
      assert.equal(reports.length, 1);
      assert.equal(reports[0]?.report.cycle, 2);
    });
  });
}
