/** The login-store conformance suite on SQLite (competitors in other processes) and PostgreSQL (other connections). */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import type { LoginStore } from '../../matcher/store/login-store.ts';
import { openPgLoginStore } from '../../matcher/store/postgres/pg-login-store.ts';
import { openSqliteLoginStore } from '../../matcher/store/sqlite/sqlite-login-store.ts';
import { loginStoreSuite } from '../conformance/login-store.suite.ts';
import { dropSchema, freshSchemaName, PG_TEST_URL, withCloseHook } from '../helpers/postgres.ts';
import { sqliteStoreInProcess } from '../helpers/store-process.ts';

const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-login-'));
let n = 0;
after(() => rm(dir, { recursive: true, force: true }));

loginStoreSuite('sqlite', async () => {
  const file = path.join(dir, `login-${(n += 1)}.sqlite`);
  return {
    store: openSqliteLoginStore({ path: file }),
    others: (count) =>
      Promise.all(Array.from({ length: count }, () => sqliteStoreInProcess<LoginStore>('login', file))),
  };
});

loginStoreSuite('postgres', async () => {
  const schema = freshSchemaName();
  const store = await openPgLoginStore({ url: PG_TEST_URL, schema });
  return {
    store: withCloseHook(store, () => dropSchema(schema)),
    others: (count) =>
      Promise.all(
        Array.from({ length: count }, () => openPgLoginStore({ url: PG_TEST_URL, schema, maxConnections: 1 })),
      ),
  };
});
