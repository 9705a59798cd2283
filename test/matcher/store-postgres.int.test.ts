/**
 * The job-store conformance suite on PostgreSQL (PG_TEST_URL; a schema of its own per test). The
 * competing claimants are other store instances, each with its own connections, as other matcher
 * replicas would be.
 */
import { openPgJobStore } from '../../matcher/store/postgres/pg-job-store.ts';
import { claimUntilEmpty, jobStoreSuite } from '../conformance/job-store.suite.ts';
import { jobSearchSuite } from '../conformance/job-search.suite.ts';
import { jobRetentionSuite } from '../conformance/job-retention.suite.ts';
import { queueAdminSuite } from '../conformance/queue-admin.suite.ts';
import type { SlotDecision } from '../../matcher/store/schedule-store.ts';
import { scheduleStoreSuite } from '../conformance/schedule-store.suite.ts';
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
            claimUntilEmpty: (taskQueueId: number, pilotId: string, jobsPerClaim?: number) =>
              claimUntilEmpty(replica, taskQueueId, pilotId, jobsPerClaim),
            close: () => replica.close(),
          };
        }),
      ),
  };
});

jobSearchSuite('postgres', async () => {
  const schema = freshSchemaName();
  return withCloseHook(await openPgJobStore({ url: PG_TEST_URL, schema }), () => dropSchema(schema));
});

jobRetentionSuite('postgres', async () => {
  const schema = freshSchemaName();
  return withCloseHook(await openPgJobStore({ url: PG_TEST_URL, schema }), () => dropSchema(schema));
});

queueAdminSuite('postgres', async () => {
  const schema = freshSchemaName();
  return withCloseHook(await openPgJobStore({ url: PG_TEST_URL, schema }), () => dropSchema(schema));
});

scheduleStoreSuite('postgres', async () => {
  const schema = freshSchemaName();
  const store = await openPgJobStore({ url: PG_TEST_URL, schema });
  return {
    store: withCloseHook(store, () => dropSchema(schema)),
    firers: (count) =>
      Promise.all(
        Array.from({ length: count }, async () => {
          const replica = await openPgJobStore({ url: PG_TEST_URL, schema, maxConnections: 2 });
          return {
            fireSlot: (decision: SlotDecision) => replica.schedules.fireSlot(decision),
            close: () => replica.close(),
          };
        }),
      ),
  };
});
