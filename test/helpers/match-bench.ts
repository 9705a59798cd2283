/** A MatchService over a real SQLite file, for ranking and property tests (no network). */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../shared/logger.ts';
import type { JobOwnership } from '../../shared/job/model.ts';
import { parseJobDescription, type JobDescriptionInput } from '../../shared/job/description.ts';
import { MatchService } from '../../matcher/matching/match-service.ts';
import { compileSchedulingPolicy, type RawSchedulingPolicy } from '../../matcher/matching/scheduling-policy.ts';
import { taskQueueDefinition } from '../../matcher/matching/task-queue-key.ts';
import { openSqliteJobStore, type SqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';

export interface MatchRig {
  store: SqliteJobStore;
  service: MatchService;
  submit(ownership: JobOwnership, jobs: Partial<JobDescriptionInput>[]): Promise<number[]>;
  close(): Promise<void>;
}

/** `bucketsFromTqs`: from how many TQs offers are ranked from buckets (0: always; Infinity: never). */
export async function matchRig(
  policy: RawSchedulingPolicy = {},
  clockMs?: () => number,
  options: { bucketsFromTqs?: number } = {},
): Promise<MatchRig> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-match-'));
  const store = openSqliteJobStore({ path: path.join(dir, 'jobs.sqlite') });
  const compiled = compileSchedulingPolicy(policy);
  const service = new MatchService({
    store,
    clock: { nowMs: clockMs ?? (() => Date.now()) },
    logger: silentLogger(),
    policy: compiled,
    ...(options.bucketsFromTqs !== undefined && { bucketsFromTqs: options.bucketsFromTqs }),
  });
  await service.refresh();
  return {
    store,
    service,
    async submit(ownership, jobs) {
      const newJobs = jobs.map((input) => {
        const description = parseJobDescription({ executable: '/bin/true', ...input });
        return {
          ownership,
          description,
          taskQueue: taskQueueDefinition(ownership, description, compiled.jobSharing(ownership.group)),
        };
      });
      const { jobIds, taskQueueIds } = await store.submitJobs(newJobs, new Date().toISOString());
      await service.jobsSubmitted(taskQueueIds);
      return jobIds;
    },
    async close() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
