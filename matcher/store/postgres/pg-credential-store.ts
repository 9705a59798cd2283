/**
 * CredentialStore on PostgreSQL: pilot secrets and refresh tokens (their sha256 only), revoked token
 * ids. Spending locks the credential's row, so two replicas handed the same secret at once cannot both
 * accept it; revoking a family locks its members. Every replica reads the same revocations.
 */
import type pg from 'pg';
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
import {
  applyPgMigrations,
  ensureSchema,
  openPgPool,
  run,
  withTransaction,
  type PgMigration,
  type PgOptions,
} from './pg-database.ts';

export const PG_CREDENTIAL_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    name: 'pilot credentials (hashed secrets and refresh tokens), revoked token ids',
    sql: `
      CREATE TABLE pilot_credentials (
        hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('secret', 'refresh')),
        vo TEXT NOT NULL,
        site TEXT NOT NULL,
        pilot_stamp TEXT NOT NULL,
        family TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        family_expires_at_ms BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        spent_at_ms BIGINT,
        access_token_id TEXT,
        access_expires_at_ms BIGINT
      );
      CREATE INDEX pilot_credentials_by_family ON pilot_credentials (family);
      CREATE INDEX pilot_credentials_by_expiry ON pilot_credentials (expires_at_ms);
      CREATE TABLE revoked_tokens (
        token_id TEXT PRIMARY KEY,
        expires_at_ms BIGINT NOT NULL,
        revoked_at_ms BIGINT NOT NULL,
        reason TEXT NOT NULL,
        revoked_by TEXT NOT NULL
      );
      CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at_ms);
    `,
  },
  {
    version: 2,
    name: 'failed pilot-token exchanges per address (the exchange rate limit)',
    sql: `
      CREATE TABLE exchange_failures (
        address TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        started_at_ms BIGINT NOT NULL,
        ends_at_ms BIGINT NOT NULL
      );
      CREATE INDEX exchange_failures_by_end ON exchange_failures (ends_at_ms);
    `,
  },
];

export async function openPgCredentialStore(options: PgOptions): Promise<PgCredentialStore> {
  const pool = openPgPool(options);
  try {
    await ensureSchema(pool, options.schema);
    await applyPgMigrations(pool, 'credentials', PG_CREDENTIAL_MIGRATIONS);
  } catch (error) {
    await pool.end();
    throw error;
  }
  return new PgCredentialStore(pool);
}

const REVOKE = `INSERT INTO revoked_tokens (token_id, expires_at_ms, revoked_at_ms, reason, revoked_by)
  VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_id) DO NOTHING`;

export class PgCredentialStore implements CredentialStore {
  readonly #pool: pg.Pool;
  readonly #ownsPool: boolean;

  /** `ownsPool`: close() ends the pool (false when the matcher's stores share one). */
  constructor(pool: pg.Pool, options: { ownsPool?: boolean } = {}) {
    this.#pool = pool;
    this.#ownsPool = options.ownsPool ?? true;
  }

  async addPilotCredential(c: NewPilotCredential): Promise<void> {
    await run(() =>
      this.#pool.query(
        `INSERT INTO pilot_credentials (hash, kind, vo, site, pilot_stamp, family, created_at_ms, expires_at_ms,
           family_expires_at_ms, created_by, access_token_id, access_expires_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [
          c.hash,
          c.kind,
          c.vo,
          c.site,
          c.pilotStamp,
          c.family,
          c.createdAtMs,
          c.expiresAtMs,
          c.familyExpiresAtMs,
          c.createdBy,
          c.accessTokenId,
          c.accessExpiresAtMs,
        ],
      ),
    );
  }

  async spendPilotCredential(
    hash: string,
    kind: PilotCredentialKind,
    pilotStamp: string,
    atMs: number,
  ): Promise<SpendOutcome> {
    return withTransaction(this.#pool, async (client): Promise<SpendOutcome> => {
      const row = (
        await client.query<CredentialRow>('SELECT * FROM pilot_credentials WHERE hash = $1 AND kind = $2 FOR UPDATE', [
          hash,
          kind,
        ])
      ).rows[0];
      if (!row) return { outcome: 'unknown' };
      const credential = credentialFromRow(row);
      if (credential.spentAtMs !== null) return { outcome: 'already-spent', credential };
      if (atMs >= credential.expiresAtMs) return { outcome: 'expired', credential };
      if (credential.pilotStamp !== pilotStamp) return { outcome: 'wrong-stamp', credential };
      await client.query('UPDATE pilot_credentials SET spent_at_ms = $1 WHERE hash = $2', [atMs, hash]);
      return { outcome: 'spent', credential: { ...credential, spentAtMs: atMs } };
    });
  }

  async revokePilotFamily(family: string, atMs: number, reason: string): Promise<string[]> {
    return withTransaction(this.#pool, async (client) => {
      const members = (
        await client.query<CredentialRow>(
          'SELECT * FROM pilot_credentials WHERE family = $1 ORDER BY hash FOR UPDATE',
          [family],
        )
      ).rows.map(credentialFromRow);
      await client.query('UPDATE pilot_credentials SET spent_at_ms = $1 WHERE family = $2 AND spent_at_ms IS NULL', [
        atMs,
        family,
      ]);
      const revoked: string[] = [];
      for (const member of members) {
        if (member.accessTokenId === null || member.accessExpiresAtMs === null) continue;
        if (member.accessExpiresAtMs <= atMs) continue;
        await client.query(REVOKE, [member.accessTokenId, member.accessExpiresAtMs, atMs, reason, 'matcher']);
        revoked.push(member.accessTokenId);
      }
      return revoked;
    });
  }

  async revokeToken(r: TokenRevocation): Promise<boolean> {
    const result = await run(() => this.#pool.query(REVOKE, [r.tokenId, r.expiresAtMs, r.atMs, r.reason, r.revokedBy]));
    return (result.rowCount ?? 0) > 0;
  }

  async isTokenRevoked(tokenId: string): Promise<boolean> {
    return (
      (await run(() => this.#pool.query('SELECT 1 FROM revoked_tokens WHERE token_id = $1', [tokenId]))).rows.length > 0
    );
  }

  async recordExchangeFailure(address: string, atMs: number, windowMs: number): Promise<FailureWindow> {
    const rows = (
      await run(() =>
        this.#pool.query<FailureWindowRow>(
          `INSERT INTO exchange_failures (address, failures, started_at_ms, ends_at_ms) VALUES ($1, 1, $2::bigint, $2::bigint + $3::bigint)
           ON CONFLICT (address) DO UPDATE SET
             failures = CASE WHEN exchange_failures.ends_at_ms <= $2 THEN 1 ELSE exchange_failures.failures + 1 END,
             started_at_ms = CASE WHEN exchange_failures.ends_at_ms <= $2 THEN $2 ELSE exchange_failures.started_at_ms END,
             ends_at_ms = CASE WHEN exchange_failures.ends_at_ms <= $2 THEN $2::bigint + $3::bigint ELSE exchange_failures.ends_at_ms END
           RETURNING failures, started_at_ms, ends_at_ms`,
          [address, atMs, windowMs],
        ),
      )
    ).rows;
    return failureWindowFromRow(rows[0] as FailureWindowRow);
  }

  async exchangeFailures(address: string, atMs: number): Promise<FailureWindow | null> {
    const rows = (
      await run(() =>
        this.#pool.query<FailureWindowRow>(
          'SELECT failures, started_at_ms, ends_at_ms FROM exchange_failures WHERE address = $1 AND ends_at_ms > $2',
          [address, atMs],
        ),
      )
    ).rows;
    return rows[0] ? failureWindowFromRow(rows[0]) : null;
  }

  async purgeExpired(atMs: number): Promise<{ credentials: number; revokedTokens: number }> {
    await run(() => this.#pool.query('DELETE FROM exchange_failures WHERE ends_at_ms <= $1', [atMs]));
    const credentials = await run(() =>
      this.#pool.query(
        'DELETE FROM pilot_credentials WHERE expires_at_ms <= $1 AND (access_expires_at_ms IS NULL OR access_expires_at_ms <= $1)',
        [atMs],
      ),
    );
    const revoked = await run(() => this.#pool.query('DELETE FROM revoked_tokens WHERE expires_at_ms <= $1', [atMs]));
    return { credentials: credentials.rowCount ?? 0, revokedTokens: revoked.rowCount ?? 0 };
  }

  async close(): Promise<void> {
    if (this.#ownsPool) await this.#pool.end().catch(() => undefined);
  }
}
