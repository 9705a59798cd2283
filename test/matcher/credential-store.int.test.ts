/** The credential-store conformance suite on SQLite (competitors in other processes) and PostgreSQL (other connections). */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import type { CredentialStore } from '../../matcher/store/credential-store.ts';
import { openPgCredentialStore } from '../../matcher/store/postgres/pg-credential-store.ts';
import { openSqliteCredentialStore } from '../../matcher/store/sqlite/sqlite-credential-store.ts';
import { credentialStoreSuite } from '../conformance/credential-store.suite.ts';
import { dropSchema, freshSchemaName, PG_TEST_URL, withCloseHook } from '../helpers/postgres.ts';
import { sqliteStoreInProcess } from '../helpers/store-process.ts';

const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-credentials-'));
let n = 0;
after(() => rm(dir, { recursive: true, force: true }));

credentialStoreSuite('sqlite', async () => {
  const file = path.join(dir, `credentials-${(n += 1)}.sqlite`);
  return {
    store: openSqliteCredentialStore({ path: file }),
    others: (count) =>
      Promise.all(Array.from({ length: count }, () => sqliteStoreInProcess<CredentialStore>('credentials', file))),
  };
});

credentialStoreSuite('postgres', async () => {
  const schema = freshSchemaName();
  const store = await openPgCredentialStore({ url: PG_TEST_URL, schema });
  return {
    store: withCloseHook(store, () => dropSchema(schema)),
    others: (count) =>
      Promise.all(
        Array.from({ length: count }, () => openPgCredentialStore({ url: PG_TEST_URL, schema, maxConnections: 1 })),
      ),
  };
});
