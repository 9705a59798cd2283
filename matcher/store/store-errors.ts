/**
 * Store failures that say nothing about the request — the disk is full, the database file became
 * read-only or went away, the I/O failed, another process holds the lock too long — become
 * STORE_UNAVAILABLE (503, retryable): the client tries again later and nothing was written, since
 * every store write is one transaction that rolled back. (PostgreSQL's are translated where its
 * queries run, in postgres/pg-database.ts.) Anything else passes through unchanged.
 */
import { PilothouseError, toPilothouseError } from '../../shared/errors.ts';

/** SQLite result codes (better-sqlite3's `code`) meaning the database cannot take writes now. */
const SQLITE_UNAVAILABLE = /^SQLITE_(FULL|READONLY|IOERR|CANTOPEN|BUSY|LOCKED|NOTADB|CORRUPT|PROTOCOL)/;

function translateStoreError(thrown: unknown): unknown {
  if (thrown instanceof PilothouseError) return thrown;
  const code = (thrown as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && SQLITE_UNAVAILABLE.test(code)) {
    return new PilothouseError(
      'STORE_UNAVAILABLE',
      `the job store cannot take this now (${code}); nothing was written, retry later`,
      { storeCode: code },
      { cause: thrown },
    );
  }
  return thrown;
}

/** What a request or frame is answered with: store faults as STORE_UNAVAILABLE, the rest as usual. */
export function toAnswerError(thrown: unknown): PilothouseError {
  return toPilothouseError(translateStoreError(thrown));
}
