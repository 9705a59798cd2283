/**
 * The job-store conformance suite on SQLite files. SQLite's concurrency is between processes (one
 * process's connections never run at the same time), so the competing claimants are child processes
 * on the same file.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { openSqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';
import { jobStoreSuite, type Claimant } from '../conformance/job-store.suite.ts';

const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-store-'));
const CLAIMANT = fileURLToPath(new URL('../helpers/sqlite-claimant.ts', import.meta.url));
let n = 0;
after(() => rm(dir, { recursive: true, force: true }));

async function claimantProcess(file: string): Promise<Claimant> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLAIMANT, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const next = (): Promise<string> => new Promise((resolve) => lines.once('line', resolve));
  const ready = await next();
  if (ready !== 'ready') throw new Error(`claimant said ${ready}`);
  return {
    async claimUntilEmpty(taskQueueId, pilotId) {
      const result = next();
      child.stdin.write(`${JSON.stringify({ taskQueueId, pilotId })}\n`);
      return JSON.parse(await result) as number[];
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill();
        await once(child, 'exit');
      }
    },
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
