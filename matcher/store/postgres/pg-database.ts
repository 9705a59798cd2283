/**
 * PostgreSQL plumbing shared by the PostgreSQL stores: a connection pool (optionally inside one
 * schema, as tests and multi-tenant deployments use), transactions retried on serialization failures
 * and deadlocks, migrations applied by exactly one process at a time (an advisory lock: replicas that
 * start together wait for the first one), and the translation of connection failures into
 * STORE_UNAVAILABLE (retryable) instead of stack traces.
 */
import pg from 'pg';
import { PilothouseError } from '../../../shared/errors.ts';

// int8 (counts, bigint ids) as JS numbers: every id and count here stays far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export type PgQueryable = pg.Pool | pg.PoolClient;

export interface PgOptions {
  /** postgres://USER@HOST:PORT/DB (password in the URL or PGPASSWORD). */
  url: string;
  /** Every connection works inside this schema (created when missing). */
  schema?: string | undefined;
  /** Pool size (default 10). */
  maxConnections?: number | undefined;
  /** Reports errors of idle connections (a restarted server); the pool replaces them. */
  onIdleError?: ((error: Error) => void) | undefined;
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

export function openPgPool(options: PgOptions): pg.Pool {
  if (options.schema !== undefined && !SCHEMA.test(options.schema)) {
    throw new PilothouseError('CONFIG_INVALID', `not a usable schema name: ${options.schema}`, { field: 'db' });
  }
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: 10_000,
    ...(options.schema !== undefined && { options: `-c search_path=${options.schema}` }),
  });
  pool.on('error', (error) => options.onIdleError?.(error));
  return pool;
}

/** Creates the pool's schema if it is missing (before any migration). */
export async function ensureSchema(pool: pg.Pool, schema: string | undefined): Promise<void> {
  if (schema === undefined) return;
  await run(() => pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`));
}

/** SQLSTATEs worth one more try of the whole transaction. */
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);
const MAX_TRANSACTION_ATTEMPTS = 5;

/**
 * Who is told how long each transaction of a pool took (for /metrics), by pool: every PostgreSQL
 * store of a matcher shares its pool, and several matchers of one test process must not mix.
 */
const commitObservers = new WeakMap<pg.Pool, (seconds: number) => void>();

export function observeCommits(pool: pg.Pool, observer: (seconds: number) => void): void {
  commitObservers.set(pool, observer);
}

export async function withTransaction<T>(pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await withClient(pool, async (client) => {
        const started = performance.now();
        await client.query('BEGIN');
        try {
          const result = await body(client);
          await client.query('COMMIT');
          commitObservers.get(pool)?.((performance.now() - started) / 1000);
          return result;
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
      });
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== undefined && RETRYABLE_SQLSTATES.has(code) && attempt < MAX_TRANSACTION_ATTEMPTS) continue;
      throw error;
    }
  }
}

/**
 * Runs `body` on one pooled connection held across awaits. pg emits 'error' on a checked-out client
 * whose connection is cut between queries (a server restart), which without a listener would end the
 * process; here it is noted, and a client that failed that way is discarded rather than pooled again.
 * Connection failures come out as STORE_UNAVAILABLE.
 */
export async function withClient<T>(pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await run(() => pool.connect());
  let broken: Error | undefined;
  const onError = (error: Error): void => {
    broken = error;
  };
  client.on('error', onError);
  try {
    return await body(client);
  } catch (error) {
    const translated = translate(error);
    if (translated instanceof PilothouseError && translated.code === 'STORE_UNAVAILABLE') broken ??= error as Error;
    throw translated;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

/** Runs a query (or any pool call), turning connection failures into STORE_UNAVAILABLE. */
export async function run<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw translate(error);
  }
}

const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EPIPE']);

/** Connection and server-side availability failures become STORE_UNAVAILABLE; others pass through. */
export function translate(error: unknown): unknown {
  if (error instanceof PilothouseError) return error;
  const e = error as { code?: string; message?: string };
  const code = e.code ?? '';
  const unavailable =
    UNAVAILABLE_ERRNOS.has(code) ||
    code.startsWith('08') || // connection exception
    code === '57P01' || // admin shutdown
    code === '57P02' ||
    code === '57P03' || // cannot connect now (starting up)
    code === '53300' || // too many connections
    /Connection terminated|timeout exceeded when trying to connect/i.test(e.message ?? '');
  if (unavailable) {
    return new PilothouseError(
      'STORE_UNAVAILABLE',
      `the database is unavailable: ${e.message ?? code}`,
      {},
      { cause: error },
    );
  }
  if (code === '28P01' || code === '28000' || code === '3D000') {
    return new PilothouseError(
      'CONFIG_INVALID',
      `the database refused the connection: ${e.message ?? code}`,
      { field: 'db' },
      { cause: error },
    );
  }
  return error;
}

export interface PgMigration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Applies a store's missing migrations in one transaction holding a transaction-level advisory lock:
 * several replicas starting at once migrate one after the other, and each sees what the other did.
 */
export async function applyPgMigrations(
  pool: pg.Pool,
  store: string,
  migrations: readonly PgMigration[],
): Promise<void> {
  await withTransaction(pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock(hashtext('pilothouse-migrations'))");
    await client.query(`CREATE TABLE IF NOT EXISTS pilothouse_migrations (
      store TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL,
      PRIMARY KEY (store, version))`);
    const applied = new Set(
      (await client.query('SELECT version FROM pilothouse_migrations WHERE store = $1', [store])).rows.map((row) =>
        Number(row.version),
      ),
    );
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query(
        'INSERT INTO pilothouse_migrations (store, version, name, applied_at) VALUES ($1, $2, $3, $4)',
        [store, migration.version, migration.name, new Date().toISOString()],
      );
    }
  });
}
