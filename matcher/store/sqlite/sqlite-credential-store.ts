/**
 * CredentialStore on SQLite, on the same database file as the job store but with its own connection
 * and its own migration table (versions from 100), so the two evolve independently. Spending a
 * credential is one IMMEDIATE transaction: two exchanges of one secret, even from two processes,
 * cannot both succeed.
 */
import Database from 'better-sqlite3';
import {
  credentialFromRow,
  failureWindowFromRow,
  type CredentialRow,
  type FailureWindowRow,
} from '../credential-row.ts';
import type {
  CredentialStore,
  FailureWindow,
  NewPilotCredential,
  PilotCredential,
  PilotCredentialKind,
  SpendOutcome,
  TokenRevocation,
} from '../credential-store.ts';
import { openSqliteConnection } from './open-database.ts';
import { applyMigrations, type Migration } from './migrations.ts';

export const CREDENTIAL_MIGRATIONS: readonly Migration[] = [
  {
    version: 100,
    name: 'pilot credentials (hashed secrets and refresh tokens), revoked token ids',
    sql: `
      CREATE TABLE pilot_credentials (
        hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('secret', 'refresh')),
        vo TEXT NOT NULL,
        site TEXT NOT NULL,
        pilot_stamp TEXT NOT NULL,
        family TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        family_expires_at_ms INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        spent_at_ms INTEGER,
        access_token_id TEXT,
        access_expires_at_ms INTEGER
      );
      CREATE INDEX pilot_credentials_by_family ON pilot_credentials (family);
      CREATE INDEX pilot_credentials_by_expiry ON pilot_credentials (expires_at_ms);

      CREATE TABLE revoked_tokens (
        token_id TEXT PRIMARY KEY,
        expires_at_ms INTEGER NOT NULL,
        revoked_at_ms INTEGER NOT NULL,
        reason TEXT NOT NULL,
        revoked_by TEXT NOT NULL
      );
      CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at_ms);
    `,
  },
  {
    version: 101,
    name: 'failed pilot-token exchanges per address (the exchange rate limit)',
    sql: `
      CREATE TABLE exchange_failures (
        address TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL,
        ends_at_ms INTEGER NOT NULL
      );
      CREATE INDEX exchange_failures_by_end ON exchange_failures (ends_at_ms);
    `,
  },
];

export function openSqliteCredentialStore(options: { path: string; autoCheckpoint?: boolean }): SqliteCredentialStore {
  const db = openSqliteConnection({
    path: options.path,
    ...(options.autoCheckpoint === undefined ? {} : { autoCheckpoint: options.autoCheckpoint }),
  });
  applyMigrations(db, 'credential_migrations', CREDENTIAL_MIGRATIONS);
  return new SqliteCredentialStore(db);
}

export class SqliteCredentialStore implements CredentialStore {
  readonly #db: Database.Database;
  readonly #sql;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#sql = {
      insertCredential: db.prepare(`
        INSERT INTO pilot_credentials (hash, kind, vo, site, pilot_stamp, family, created_at_ms, expires_at_ms,
          family_expires_at_ms, created_by, access_token_id, access_expires_at_ms)
        VALUES (@hash, @kind, @vo, @site, @pilotStamp, @family, @createdAtMs, @expiresAtMs, @familyExpiresAtMs,
          @createdBy, @accessTokenId, @accessExpiresAtMs)`),
      credential: db.prepare('SELECT * FROM pilot_credentials WHERE hash = ? AND kind = ?'),
      spend: db.prepare('UPDATE pilot_credentials SET spent_at_ms = ? WHERE hash = ? AND spent_at_ms IS NULL'),
      family: db.prepare('SELECT * FROM pilot_credentials WHERE family = ?'),
      spendFamily: db.prepare('UPDATE pilot_credentials SET spent_at_ms = ? WHERE family = ? AND spent_at_ms IS NULL'),
      revoke: db.prepare(`
        INSERT INTO revoked_tokens (token_id, expires_at_ms, revoked_at_ms, reason, revoked_by)
        VALUES (@tokenId, @expiresAtMs, @atMs, @reason, @revokedBy) ON CONFLICT (token_id) DO NOTHING`),
      isRevoked: db.prepare('SELECT 1 FROM revoked_tokens WHERE token_id = ?').pluck(),
      purgeCredentials: db.prepare(
        'DELETE FROM pilot_credentials WHERE expires_at_ms <= ? AND (access_expires_at_ms IS NULL OR access_expires_at_ms <= ?)',
      ),
      purgeRevoked: db.prepare('DELETE FROM revoked_tokens WHERE expires_at_ms <= ?'),
      recordFailure: db.prepare(
        `INSERT INTO exchange_failures (address, failures, started_at_ms, ends_at_ms) VALUES (@address, 1, @atMs, @atMs + @windowMs)
         ON CONFLICT (address) DO UPDATE SET
           failures = CASE WHEN exchange_failures.ends_at_ms <= @atMs THEN 1 ELSE exchange_failures.failures + 1 END,
           started_at_ms = CASE WHEN exchange_failures.ends_at_ms <= @atMs THEN @atMs ELSE exchange_failures.started_at_ms END,
           ends_at_ms = CASE WHEN exchange_failures.ends_at_ms <= @atMs THEN @atMs + @windowMs ELSE exchange_failures.ends_at_ms END
         RETURNING failures, started_at_ms, ends_at_ms`,
      ),
      failures: db.prepare(
        'SELECT failures, started_at_ms, ends_at_ms FROM exchange_failures WHERE address = ? AND ends_at_ms > ?',
      ),
      purgeFailures: db.prepare('DELETE FROM exchange_failures WHERE ends_at_ms <= ?'),
    };
  }

  async addPilotCredential(credential: NewPilotCredential): Promise<void> {
    this.#sql.insertCredential.run(credential);
  }

  async spendPilotCredential(
    hash: string,
    kind: PilotCredentialKind,
    pilotStamp: string,
    atMs: number,
  ): Promise<SpendOutcome> {
    return this.#db
      .transaction((): SpendOutcome => {
        const row = this.#sql.credential.get(hash, kind) as CredentialRow | undefined;
        if (!row) return { outcome: 'unknown' };
        const credential = credentialFromRow(row);
        if (credential.spentAtMs !== null) return { outcome: 'already-spent', credential };
        if (atMs >= credential.expiresAtMs) return { outcome: 'expired', credential };
        if (credential.pilotStamp !== pilotStamp) return { outcome: 'wrong-stamp', credential };
        this.#sql.spend.run(atMs, hash);
        return { outcome: 'spent', credential: { ...credential, spentAtMs: atMs } };
      })
      .immediate();
  }

  async revokePilotFamily(family: string, atMs: number, reason: string): Promise<string[]> {
    return this.#db
      .transaction(() => {
        const members = (this.#sql.family.all(family) as CredentialRow[]).map(credentialFromRow);
        this.#sql.spendFamily.run(atMs, family);
        const revoked: string[] = [];
        for (const member of members) {
          if (member.accessTokenId === null || member.accessExpiresAtMs === null) continue;
          if (member.accessExpiresAtMs <= atMs) continue;
          this.#sql.revoke.run({
            tokenId: member.accessTokenId,
            expiresAtMs: member.accessExpiresAtMs,
            atMs,
            reason,
            revokedBy: 'matcher',
          });
          revoked.push(member.accessTokenId);
        }
        return revoked;
      })
      .immediate();
  }

  async revokeToken(revocation: TokenRevocation): Promise<boolean> {
    return this.#sql.revoke.run(revocation).changes > 0;
  }

  async isTokenRevoked(tokenId: string): Promise<boolean> {
    return this.#sql.isRevoked.get(tokenId) !== undefined;
  }

  async recordExchangeFailure(address: string, atMs: number, windowMs: number): Promise<FailureWindow> {
    return failureWindowFromRow(this.#sql.recordFailure.get({ address, atMs, windowMs }) as FailureWindowRow);
  }

  async exchangeFailures(address: string, atMs: number): Promise<FailureWindow | null> {
    const row = this.#sql.failures.get(address, atMs) as FailureWindowRow | undefined;
    return row ? failureWindowFromRow(row) : null;
  }

  async purgeExpired(atMs: number): Promise<{ credentials: number; revokedTokens: number }> {
    this.#sql.purgeFailures.run(atMs);
    return {
      credentials: this.#sql.purgeCredentials.run(atMs, atMs).changes,
      revokedTokens: this.#sql.purgeRevoked.run(atMs).changes,
    };
  }

  /** While refused, every write fails (SQLITE_READONLY, answered as STORE_UNAVAILABLE): the file is lost. */
  refuseWrites(refuse: boolean): void {
    if (this.#db.open) this.#db.pragma(`query_only = ${refuse ? 'ON' : 'OFF'}`);
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
