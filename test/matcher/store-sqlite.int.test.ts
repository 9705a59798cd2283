import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { openSqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';
import { jobStoreSuite } from '../conformance/job-store.suite.ts';

const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-store-'));
let n = 0;
after(() => rm(dir, { recursive: true, force: true }));

// A real SQLite file per test (WAL mode needs a file, not :memory:).
jobStoreSuite('sqlite', async () => openSqliteJobStore({ path: path.join(dir, `store-${(n += 1)}.sqlite`) }));
