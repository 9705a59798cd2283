/** The pilot-store conformance suite on SQLite files and on PostgreSQL (a schema per test). */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { openPgPilotStore } from '../../matcher/store/postgres/pg-pilot-store.ts';
import { openSqlitePilotStore } from '../../matcher/store/sqlite/sqlite-pilot-store.ts';
import { pilotStoreSuite } from '../conformance/pilot-store.suite.ts';
import { dropSchema, freshSchemaName, PG_TEST_URL, withCloseHook } from '../helpers/postgres.ts';

const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-pilot-store-'));
let n = 0;
after(() => rm(dir, { recursive: true, force: true }));

// A real SQLite file per test, migrated from empty (the job store's schema first, then the pilot store's).
pilotStoreSuite('sqlite', async () => openSqlitePilotStore({ path: path.join(dir, `pilots-${(n += 1)}.sqlite`) }));

pilotStoreSuite('postgres', async () => {
  const schema = freshSchemaName();
  return withCloseHook(await openPgPilotStore({ url: PG_TEST_URL, schema }), () => dropSchema(schema));
});
