/**
 * One behavioural suite for every CE backend (local processes, SSH, SLURM here and over SSH, HTCondor
 * replica, ARC). Real batch jobs run: short sh scripts stand in for the pilot wrapper, so that what is
 * checked is the backend alone — submitting several pilots in one call, following them to Done, Failed
 * and Aborted with their exit codes, reading back their stdout/stderr (and the stamp the backend put
 * into their environment), cleaning up, and Unknown for a reference the CE never issued.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type {
  BackendStatus,
  CeBackend,
  PilotJobResources,
  SubmittedPilot,
} from '../../site-director/backends/backend.ts';
import { newStamp } from '../../site-director/submit.ts';

export interface BackendUnderTest {
  backend: CeBackend;
  queue: string;
  resources: PilotJobResources;
  /** A reference of the backend's own form that the CE never issued. */
  unknownRef: string;
  /** How long a batch job of this CE takes to end, at most (bounds the waits). */
  endWithinMs: number;
  /** How often the CE is asked while waiting. */
  pollMs: number;
  cleanup?(): Promise<void>;
}

const OK = 'echo "out $PILOTHOUSE_PILOT_STAMP"; echo "err line" >&2; exit 0';
const FAIL = 'echo failing; exit 3';
const LONG = 'echo long; sleep 90';

export async function waitForStatus(
  subject: BackendUnderTest,
  refs: readonly SubmittedPilot[],
  done: (status: BackendStatus) => boolean,
  what: string,
): Promise<Map<string, BackendStatus>> {
  const deadline = Date.now() + subject.endWithinMs;
  let last = new Map<string, BackendStatus>();
  for (;;) {
    last = await subject.backend.status(refs, AbortSignal.timeout(60_000));
    if (
      refs.every((ref) => {
        const s = last.get(ref.ref);
        return s !== undefined && done(s);
      })
    )
      return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(Object.fromEntries(last))}`);
    }
    await new Promise((resolve) => setTimeout(resolve, subject.pollMs));
  }
}

export function backendSuite(name: string, setup: () => Promise<BackendUnderTest>): void {
  describe(`CE backend conformance: ${name}`, () => {
    let subject: BackendUnderTest;
    let ok: SubmittedPilot[] = [];
    let failing: SubmittedPilot[] = [];
    let long: SubmittedPilot[] = [];
    const stamps = { ok: [newStamp(), newStamp()], fail: [newStamp()], long: [newStamp()] };

    const submit = async (list: string[], script: string): Promise<SubmittedPilot[]> => {
      const outcome = await subject.backend.submit({
        queue: subject.queue,
        resources: subject.resources,
        pilots: list.map((stamp) => ({ stamp, wrapper: `#!/bin/sh\n${script}\n` })),
        signal: AbortSignal.timeout(120_000),
      });
      assert.equal(outcome.error, null, String(outcome.error));
      return outcome.submitted;
    };

    before(async () => {
      subject = await setup();
      // Everything is submitted at once: slow CEs (ARC takes ~20 s a job) run the cases side by side.
      [ok, failing, long] = await Promise.all([
        submit(stamps.ok, OK),
        submit(stamps.fail, FAIL),
        submit(stamps.long, LONG),
      ]);
    });
    after(async () => {
      await subject.backend.cancel(long, AbortSignal.timeout(60_000)).catch(() => undefined);
      await subject.backend.close();
      await subject.cleanup?.();
    });

    it('submits several pilots in one call, each with its own reference', () => {
      assert.deepEqual(
        ok.map((p) => p.stamp),
        stamps.ok,
      );
      assert.equal(new Set([...ok, ...failing, ...long].map((p) => p.ref)).size, 4);
    });

    it('follows a pilot that ended well to Done (exit 0) and reads back its stdout, stderr and stamp', async () => {
      const statuses = await waitForStatus(subject, ok, (s) => s.status === 'Done', 'Done');
      for (const pilot of ok) {
        assert.equal(statuses.get(pilot.ref)?.exitCode, 0);
        const output = await subject.backend.fetchOutput(pilot, AbortSignal.timeout(60_000));
        assert.ok(output, 'output is there');
        assert.match(output.stdout, new RegExp(`out ${pilot.stamp}`));
        assert.match(output.stderr, /err line/);
      }
    });

    it('follows a pilot that failed to Failed, with its exit code', async () => {
      const statuses = await waitForStatus(subject, failing, (s) => s.status === 'Failed', 'Failed');
      const status = statuses.get(failing[0]?.ref as string);
      assert.equal(status?.exitCode, 3);
      assert.match(status?.reason ?? '', /3/);
    });

    it('cancels a pilot: it ends Aborted', async () => {
      await waitForStatus(subject, long, (s) => s.status === 'Running' || s.status === 'Waiting', 'started');
      await subject.backend.cancel(long, AbortSignal.timeout(60_000));
      const statuses = await waitForStatus(subject, long, (s) => s.status === 'Aborted', 'Aborted');
      assert.equal(statuses.get(long[0]?.ref as string)?.status, 'Aborted');
    });

    it('says Unknown for a reference it never issued, in the same call as known ones', async () => {
      const statuses = await subject.backend.status(
        [...ok, { stamp: 'nobody', ref: subject.unknownRef }],
        AbortSignal.timeout(60_000),
      );
      assert.equal(statuses.get(subject.unknownRef)?.status, 'Unknown');
      assert.equal(statuses.get(ok[0]?.ref as string)?.status, 'Done');
    });

    it('cleans what an ended pilot left behind (at once, or soon for CEs that clean in the background)', async () => {
      const pilot = ok[1] as SubmittedPilot;
      await subject.backend.clean(pilot, AbortSignal.timeout(60_000));
      const deadline = Date.now() + subject.endWithinMs;
      while ((await subject.backend.fetchOutput(pilot, AbortSignal.timeout(60_000))) !== null) {
        assert.ok(Date.now() < deadline, 'the output is still there');
        await new Promise((resolve) => setTimeout(resolve, subject.pollMs));
      }
    });
  });
}
