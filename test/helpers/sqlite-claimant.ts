/**
 * A claimant in a process of its own, on a SQLite file another process also uses: it opens the store,
 * says `ready`, waits for a start line `{"taskQueueId": N, "pilotId": "..."}` on stdin (so that several
 * start at once), claims from that task queue until it is empty and prints the ids it won as JSON.
 *   node --import tsx test/helpers/sqlite-claimant.ts FILE
 */
import { createInterface } from 'node:readline';
import { openSqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';

const store = openSqliteJobStore({ path: process.argv[2] as string });
const lines = createInterface({ input: process.stdin });
process.stdout.write('ready\n');
const start = JSON.parse(await new Promise<string>((resolve) => lines.once('line', resolve))) as {
  taskQueueId: number;
  pilotId: string;
};
const won: number[] = [];
for (;;) {
  const result = await store.claimFromTaskQueue(start.taskQueueId, {
    pilotId: start.pilotId,
    site: 'Site.A',
    ce: 'ce1',
    at: new Date().toISOString(),
    jobType: 'User',
    maxRunning: null,
    matchingDelaySec: null,
  });
  if (!result.job) break;
  won.push(result.job.id);
}
await store.close();
process.stdout.write(`${JSON.stringify(won)}\n`);
lines.close();
