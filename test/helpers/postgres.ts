/**
 * The PostgreSQL the tests use: PG_TEST_URL, by default the local server (trust auth, database
 * `test`). Every store under test gets a schema of its own, dropped when the store closes.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_TEST_URL = process.env.PG_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export function freshSchemaName(): string {
  return `ph_test_${process.pid}_${randomBytes(4).toString('hex')}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_TEST_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** The object with its `close` also running `after` (its methods stay bound to it). */
export function withCloseHook<T extends { close(): Promise<void> }>(target: T, after: () => Promise<void>): T {
  return new Proxy(target, {
    get(object, property) {
      if (property === 'close') {
        return async () => {
          await object.close();
          await after();
        };
      }
      const value = Reflect.get(object, property, object) as unknown;
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}
