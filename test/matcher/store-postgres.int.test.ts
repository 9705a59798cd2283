/**
 * The job-store conformance suite on PostgreSQL (PG_TEST_URL; a schema of its own per test). The
 * competing claimants are other store instances, each with its own connections, as other matcher
 * replicas would be.
 */
import { openPgJobStore } from '../../matcher/store/postgres/pg-job-store.ts';
import { jobStoreSuite } from '../conformance/job-store.suite.ts';
import { dropSchema, freshSchemaName, PG_TEST_URL, withCloseHook } from '../helpers/postgres.ts';

jobStoreSuite('postgres', async () => {
  const schema = freshSchemaName();
  const store = await openPgJobStore({ url: PG_TEST_URL, schema });
  return {
    store: withCloseHook(store, () => dropSchema(schema)),
    claimants: (count) =>
      Promise.all(
        Array.from({ length: count }, async () => {
          const replica = await openPgJobStore({ url: PG_TEST_URL, schema, maxConnections: 2 });
          return {
            async claimUntilEmpty(taskQueueId: number, pilotId: string) {
              const won: number[] = [];
              for (;;) {
                const result = await replica.claimFromTaskQueue(taskQueueId, {
                  pilotId,
                  site: 'Site.A',
                  ce: 'ce1',
                  at: new Date().toISOString(),
                  jobType: 'User',
                  maxRunning: null,
                  matchingDelaySec: null,
                });
                if (!result.job) return won;
                won.push(result.job.id);
              }
            },
            close: () => replica.close(),
          };
        }),
      ),
  };
});
