/**
 * Opens a connection to the matcher's SQLite file with the settings every store shares: WAL, NORMAL
 * sync (durable across process crashes, no fsync per commit), a busy timeout for other processes.
 */
import Database from 'better-sqlite3';
import { PilothouseError } from '../../../shared/errors.ts';

export interface SqliteConnectionOptions {
  /** File path, or ':memory:'. */
  path: string;
  /**
   * False when a WalCheckpointer runs for this file in this process: then no connection of the process
   * checkpoints inside its own commits (a checkpoint ends with an fsync, which would stall the event
   * loop for milliseconds). Connections of other processes (CLI tools) keep SQLite's default.
   */
  autoCheckpoint?: boolean;
  /** Page cache of this connection (default SQLite's 2 MiB). */
  cacheMiB?: number;
  /** Bytes of the file read through mmap instead of read() (default 0: off). */
  mmapBytes?: number;
}

export function openSqliteConnection(options: SqliteConnectionOptions): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(options.path);
    db.pragma('journal_mode = WAL');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code !== 'string' || !/^SQLITE_(CANTOPEN|READONLY|IOERR|PERM)/.test(code)) throw error;
    throw notWritable(options.path, code, error);
  }
  if (db.readonly) {
    // SQLite falls back to read-only when the file is not writable: every write would then fail one
    // by one. Say so at once instead.
    db.close();
    throw notWritable(options.path, 'SQLITE_READONLY');
  }
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  if (options.autoCheckpoint === false) db.pragma('wal_autocheckpoint = 0');
  if (options.cacheMiB !== undefined) db.pragma(`cache_size = -${Math.round(options.cacheMiB * 1024)}`);
  if (options.mmapBytes !== undefined) db.pragma(`mmap_size = ${Math.round(options.mmapBytes)}`);
  return db;
}

function notWritable(file: string, storeCode: string, cause?: unknown): PilothouseError {
  return new PilothouseError(
    'STORE_UNAVAILABLE',
    `the database file ${file} cannot be opened for writing (${storeCode}): check its owner, its permissions, its directory and the file system`,
    { path: file, storeCode },
    cause === undefined ? undefined : { cause },
  );
}
