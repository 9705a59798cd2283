/**
 * The job-store conformance suite on SQLite files. SQLite's concurrency is between processes (one
 * process's connections never run at the same time), so the competing claimants are child processes
 * on the same file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { openSqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';
import type { JobStore } from '../../matcher/store/job-store.ts';
import { claimUntilEmpty, jobStoreSuite, type Claimant } from '../conformance/job-store.suite.ts';
import { jobSearchSuite } from '../conformance/job-search.suite.ts';
import { jobRetentionSuite } from '../conformance/job-retention.suite.ts';
import { queueAdminSuite } from '../conformance/queue-admin.suite.ts';
import { sqliteStoreInProcess } from '../helpers/store-process.ts';
import { scheduleStoreSuite } from '../conformance/schedule-store.suite.ts';
import type { ScheduleStore } from '../../matcher/store/schedule-store.ts';

const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-store-'));
let n = 0;
after(() => rm(dir, { recursive: true, force: true }));

async function claimantProcess(file: string): Promise<Claimant> {
  const store = await sqliteStoreInProcess<JobStore>('jobs', file);
  return {
    claimUntilEmpty: (tq, pilotId, jobsPerClaim) => claimUntilEmpty(store, tq, pilotId, jobsPerClaim),
    close: () => store.close(),
  };
}

// A real SQLite file per test (WAL mode needs a file, not :memory:).
jobStoreSuite('sqlite', async () => {
  const file = path.join(dir, `store-${(n += 1)}.sqlite`);
  return {
    store: openSqliteJobStore({ path: file }),
    claimants: (count) => Promise.all(Array.from({ length: count }, () => claimantProcess(file))),
  };
});

jobSearchSuite('sqlite', async () => openSqliteJobStore({ path: path.join(dir, `search-${(n += 1)}.sqlite`) }));

jobRetentionSuite('sqlite', async () => openSqliteJobStore({ path: path.join(dir, `retention-${(n += 1)}.sqlite`) }));

queueAdminSuite('sqlite', async () => openSqliteJobStore({ path: path.join(dir, `admin-${(n += 1)}.sqlite`) }));

scheduleStoreSuite('sqlite', async () => {
  const file = path.join(dir, `schedules-${(n += 1)}.sqlite`);
  return {
    store: openSqliteJobStore({ path: file }),
    firers: (count) =>
      Promise.all(
        Array.from({ length: count }, () =>
          sqliteStoreInProcess<ScheduleStore & { close(): Promise<void> }>('schedules', file),
        ),
      ),
  };
});
