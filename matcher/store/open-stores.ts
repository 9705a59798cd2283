/**
 * Opens the matcher's stores (jobs, credentials, user login, pilot activity, pilot records) at a location:
 *  - SQLite: one file, one connection each, the WAL checkpointer on a worker thread, and the file's
 *    process lock (one matcher per file);
 *  - PostgreSQL: one pool shared by the stores, migrations applied under an advisory lock.
 */
import type { Logger } from '../../shared/logger.ts';
import { LocalBus, type ClusterBus } from '../cluster/cluster-bus.ts';
import { PgBus } from '../cluster/pg-bus.ts';
import { PgPresence, PG_PRESENCE_MIGRATIONS } from '../cluster/pg-presence.ts';
import type { ClusterPresence } from '../cluster/presence.ts';
import type { Clock } from '../../shared/clock.ts';
import type { CredentialStore } from './credential-store.ts';
import type { JobStore } from './job-store.ts';
import type { LoginStore } from './login-store.ts';
import type { StoreLocation } from './location.ts';
import type { PilotActivityStore } from './pilot-activity-store.ts';
import type { PilotStore } from './pilot-store.ts';
import { acquireProcessLock } from './process-lock.ts';
import { openPgCredentialStore, PgCredentialStore, PG_CREDENTIAL_MIGRATIONS } from './postgres/pg-credential-store.ts';
import { applyPgMigrations, ensureSchema, observeCommits, openPgPool, translate } from './postgres/pg-database.ts';
import { PG_JOB_MIGRATIONS } from './postgres/pg-job-migrations.ts';
import { PgLoginStore, PG_LOGIN_MIGRATIONS } from './postgres/pg-login-store.ts';
import { PgJobStore } from './postgres/pg-job-store.ts';
import { PgPilotActivityStore, PG_PILOT_ACTIVITY_MIGRATIONS } from './postgres/pg-pilot-activity-store.ts';
import { PgPilotStore, PG_PILOT_MIGRATIONS } from './postgres/pg-pilot-store.ts';
import { openSqliteCredentialStore } from './sqlite/sqlite-credential-store.ts';
import { openSqliteJobStore } from './sqlite/sqlite-job-store.ts';
import { openSqliteLoginStore } from './sqlite/sqlite-login-store.ts';
import { DEFAULT_MAX_LOG_LINES_PER_PILOT, openSqlitePilotActivityStore } from './sqlite/sqlite-pilot-activity-store.ts';
import { openSqlitePilotStore } from './sqlite/sqlite-pilot-store.ts';
import { WalCheckpointer } from './sqlite/wal-checkpointer.ts';
import { DatabaseFileGuard } from './sqlite/database-file-guard.ts';

export interface MatcherStores {
  jobs: JobStore;
  credentials: CredentialStore;
  /** Device codes, sign-in trips, authorization codes and refresh tokens of users. */
  login: LoginStore;
  pilotActivity: PilotActivityStore;
  pilots: PilotStore;
  /** How this matcher tells the others sharing the database (nobody to tell on SQLite). */
  bus: ClusterBus;
  /** Which replica holds which pilot, and chores run once (null on SQLite: the registry is the truth). */
  presence: ClusterPresence | null;
  /** Null while the stores can work; else why not (the SQLite file was removed or replaced). */
  fault(): string | null;
  close(): Promise<void>;
}

export interface OpenStoresOptions {
  logger: Logger;
  /** SQLite only: the WAL checkpointer's settings. */
  walCheckpoint: { intervalMs: number; restartAboveFrames: number; holdTimeoutMs: number };
  /** PostgreSQL only: connections this process may hold. */
  maxConnections?: number;
  /** SQLite only: how often the file is checked to still be the one open (database-file-guard.ts). */
  fileCheckIntervalMs?: number;
  clock: Clock;
  /** Told how long each write transaction took, in seconds (for /metrics). */
  onCommit?: (seconds: number) => void;
}

export const DEFAULT_FILE_CHECK_INTERVAL_MS = 1_000;

/** Connections of one matcher's pool: PostgreSQL allows 100 by default, for every replica. */
export const DEFAULT_PG_MAX_CONNECTIONS = 16;

export async function openMatcherStores(location: StoreLocation, options: OpenStoresOptions): Promise<MatcherStores> {
  return location.kind === 'sqlite' ? openSqliteStores(location.path, options) : openPgStores(location, options);
}

function openSqliteStores(file: string, options: OpenStoresOptions): MatcherStores {
  const lock = acquireProcessLock(file, `the SQLite database ${file}`);
  try {
    // Every connection of this process leaves checkpoints to the checkpointer's worker thread.
    const sqlite = { path: file, autoCheckpoint: false };
    const jobs = openSqliteJobStore({ ...sqlite, ...(options.onCommit && { onCommit: options.onCommit }) });
    const credentials = openSqliteCredentialStore(sqlite);
    const login = openSqliteLoginStore(sqlite);
    const pilotActivity = openSqlitePilotActivityStore(sqlite);
    const pilots = openSqlitePilotStore(sqlite);
    const checkpointer = new WalCheckpointer({
      path: file,
      gate: jobs.writeGate,
      logger: options.logger.child({ module: 'wal-checkpointer' }),
      // The job store writes nearly all pages; its commits checkpoint if the worker is gone.
      onFailure: () => jobs.checkpointInCommits(),
      ...options.walCheckpoint,
    });
    const guard = new DatabaseFileGuard({
      path: file,
      intervalMs: options.fileCheckIntervalMs ?? DEFAULT_FILE_CHECK_INTERVAL_MS,
      onLost(reason) {
        for (const store of [jobs, credentials, login, pilotActivity, pilots]) store.refuseWrites(true);
        options.logger.error(
          { path: file, reason },
          'database file removed or replaced while open: writes refused until it is put back, or restored and the matcher restarted',
        );
      },
      onRestored() {
        for (const store of [jobs, credentials, login, pilotActivity, pilots]) store.refuseWrites(false);
        options.logger.warn({ path: file }, 'database file back where it was: writes resume');
      },
    });
    return {
      jobs,
      credentials,
      login,
      pilotActivity,
      pilots,
      bus: new LocalBus(),
      presence: null,
      fault: () => {
        const lost = guard.check();
        return lost === null
          ? null
          : `the database file ${file} was ${lost} while open: put it back, or restore it and restart the matcher`;
      },
      async close() {
        guard.stop();
        await checkpointer.stop();
        await jobs.close();
        await credentials.close();
        await login.close();
        await pilotActivity.close();
        await pilots.close();
        lock.release();
      },
    };
  } catch (error) {
    lock.release();
    throw error;
  }
}

async function openPgStores(
  location: Extract<StoreLocation, { kind: 'postgres' }>,
  options: OpenStoresOptions,
): Promise<MatcherStores> {
  const logger = options.logger.child({ module: 'postgres' });
  const pool = openPgPool({
    url: location.url,
    schema: location.schema,
    maxConnections: options.maxConnections ?? DEFAULT_PG_MAX_CONNECTIONS,
    onIdleError: (error) => logger.warn({ err: (translate(error) as Error).message }, 'database connection lost'),
  });
  if (options.onCommit) observeCommits(pool, options.onCommit);
  try {
    await ensureSchema(pool, location.schema);
    await applyPgMigrations(pool, 'jobs', PG_JOB_MIGRATIONS);
    await applyPgMigrations(pool, 'credentials', PG_CREDENTIAL_MIGRATIONS);
    await applyPgMigrations(pool, 'login', PG_LOGIN_MIGRATIONS);
    await applyPgMigrations(pool, 'pilot-activity', PG_PILOT_ACTIVITY_MIGRATIONS);
    await applyPgMigrations(pool, 'pilots', PG_PILOT_MIGRATIONS);
    await applyPgMigrations(pool, 'presence', PG_PRESENCE_MIGRATIONS);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw translate(error);
  }
  let bus: PgBus;
  let presence: PgPresence;
  try {
    presence = await PgPresence.start(pool, options.clock);
    bus = await PgBus.start({
      url: location.url,
      schema: location.schema,
      pool,
      logger: options.logger.child({ module: 'cluster-bus' }),
    });
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw translate(error);
  }
  const shared = { ownsPool: false };
  return {
    jobs: new PgJobStore(pool, shared),
    credentials: new PgCredentialStore(pool, shared),
    login: new PgLoginStore(pool, shared),
    pilotActivity: new PgPilotActivityStore(pool, DEFAULT_MAX_LOG_LINES_PER_PILOT, shared),
    pilots: new PgPilotStore(pool, shared),
    bus,
    presence,
    fault: () => null,
    async close() {
      await bus.close();
      await presence.close();
      await pool.end().catch(() => undefined);
    },
  };
}

/** The credential store alone (for `pilothouse token revoke` on a data directory or database). */
export async function openCredentialStoreAt(location: StoreLocation): Promise<CredentialStore> {
  if (location.kind === 'sqlite') return openSqliteCredentialStore({ path: location.path });
  return openPgCredentialStore({ url: location.url, schema: location.schema, maxConnections: 2 });
}
