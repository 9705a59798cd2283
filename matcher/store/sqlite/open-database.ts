/**
 * Opens a connection to the matcher's SQLite file with the settings every store shares: WAL, NORMAL
 * sync (durable across process crashes, no fsync per commit), a busy timeout for other processes.
 */
import Database from 'better-sqlite3';

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
  const db = new Database(options.path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  if (options.autoCheckpoint === false) db.pragma('wal_autocheckpoint = 0');
  if (options.cacheMiB !== undefined) db.pragma(`cache_size = -${Math.round(options.cacheMiB * 1024)}`);
  if (options.mmapBytes !== undefined) db.pragma(`mmap_size = ${Math.round(options.mmapBytes)}`);
  return db;
}
