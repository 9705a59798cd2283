/**
 * What a chaos run must leave behind, checked from outside the matcher:
 *  - at every crash point (the matcher just SIGKILLed) and at the end, the store's invariants hold;
 *  - every job is Done, with exactly one applied Done in its history, in its final attempt;
 *  - the output it keeps is the final attempt's (the payload writes its job id and attempt into
 *    `attempt.txt`, which the output sandbox carries);
 *  - the final attempt's payload started once and ran to its end (marker files `ID.ATTEMPT.start`
 *    and `ID.ATTEMPT.end` written by the payloads into a directory of the run), and no payload ran
 *    for an attempt the job never had.
 * Payloads of earlier attempts may well have run to their end (a killed pilot's orphan, the frozen
 * pilot's payload): they are counted, as proof that fencing had something to refuse.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { checkInvariants, readSnapshot } from '../../matcher/store/invariants.ts';
import { acquireProcessLock } from '../../matcher/store/process-lock.ts';
import { openSqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';
import type { JobHistoryEntry, JobView } from '../../shared/job/model.ts';

/** The store's invariants, read from the SQLite file while no matcher holds it. */
export async function storeViolations(dbFile: string, when: string): Promise<string[]> {
  const lock = acquireProcessLock(dbFile, `the SQLite database ${dbFile}`);
  const store = openSqliteJobStore({ path: dbFile });
  try {
    return checkInvariants(await readSnapshot(store)).map((v) => `${when}: ${v.invariant}: ${v.detail}`);
  } finally {
    await store.close();
    lock.release();
  }
}

export interface FinalJob {
  job: JobView;
  history: readonly JobHistoryEntry[];
  /** The output sandbox (tar.gz) the matcher hands out for the job, null if it has none. */
  output: Buffer | null;
}

export interface JobsVerdict {
  violations: string[];
  /** Jobs that needed more than one attempt. */
  retried: number;
  /** Payloads of attempts that were not the job's last which still ran to their end. */
  staleCompletions: number;
}

export async function verifyJobs(jobs: readonly FinalJob[], markerDir: string): Promise<JobsVerdict> {
  const violations: string[] = [];
  const markers = new Map<string, number>();
  /** Per job, the highest attempt any payload left a marker for. */
  const highestMarked = new Map<number, number>();
  for (const name of await readdir(markerDir)) {
    const lines = (await readFile(path.join(markerDir, name), 'utf8')).split('\n').filter(Boolean).length;
    markers.set(name, lines);
    const [jobId, attempt] = name.split('.').map(Number) as [number, number];
    highestMarked.set(jobId, Math.max(highestMarked.get(jobId) ?? 0, attempt));
  }
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'ph-chaos-out-'));
  let retried = 0;
  let staleCompletions = 0;
  try {
    for (const { job, history, output } of jobs) {
      const id = job.id;
      if (job.attempt > 1) retried += 1;
      if (job.status !== 'Done') violations.push(`job ${id} ended ${job.status} (${job.minorStatus})`);
      const dones = history.filter((entry) => entry.applied && entry.status === 'Done');
      if (dones.length !== 1 || dones[0]?.attempt !== job.attempt) {
        const seen = dones.map((entry) => entry.attempt).join(', ') || 'none';
        violations.push(`job ${id}: applied Done in attempts [${seen}], final attempt ${job.attempt}`);
      }
      const starts = markers.get(`${id}.${job.attempt}.start`) ?? 0;
      if (starts !== 1) violations.push(`job ${id}: the final attempt's payload started ${starts} times`);
      if (!markers.has(`${id}.${job.attempt}.end`))
        violations.push(`job ${id}: the final attempt's payload never ended`);
      for (let attempt = 1; attempt < job.attempt; attempt += 1) {
        if (markers.has(`${id}.${attempt}.end`)) staleCompletions += 1;
      }
      const highest = highestMarked.get(id) ?? 0;
      if (highest > job.attempt) {
        violations.push(`job ${id}: a payload ran for attempt ${highest}, beyond the final ${job.attempt}`);
      }
      const kept = output === null ? null : await attemptFile(output, path.join(scratch, String(id)));
      if (kept !== `${id} ${job.attempt}`) {
        violations.push(`job ${id}: its output says "${kept}", not the final attempt "${id} ${job.attempt}"`);
      }
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return { violations, retried, staleCompletions };
}

/** `attempt.txt` from an output sandbox, or a description of why there is none. */
async function attemptFile(archive: Buffer, dir: string): Promise<string> {
  await rm(dir, { recursive: true, force: true });
  const file = `${dir}.tar.gz`;
  await writeFile(file, archive);
  await mkdir(dir, { recursive: true });
  try {
    await tar.x({ file, cwd: dir, strict: true });
    return (await readFile(path.join(dir, 'attempt.txt'), 'utf8')).trim();
  } catch (error) {
    return `unreadable output: ${(error as Error).message}`;
  }
}
