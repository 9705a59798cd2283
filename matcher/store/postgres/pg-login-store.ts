/**
 * LoginStore on PostgreSQL: every one-time step locks its row (FOR UPDATE), so two replicas handed the
 * same device code, state, code or refresh token at once cannot both accept it.
 */
import type pg from 'pg';
import {
  grantFromRow,
  judgePoll,
  refreshTokenFromRow,
  SLOW_DOWN_STEP_SEC,
  type LoginGrantRow,
  type RefreshTokenRow,
} from '../login-rows.ts';
import type {
  DevicePoll,
  LoginGrant,
  LoginIdentity,
  LoginStore,
  NewLoginGrant,
  RefreshSpend,
  UserRefreshToken,
} from '../login-store.ts';
import {
  applyPgMigrations,
  ensureSchema,
  openPgPool,
  run,
  withTransaction,
  type PgMigration,
  type PgOptions,
} from './pg-database.ts';

export const PG_LOGIN_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    name: 'user login: device codes, identity-provider trips, authorization codes, rotating refresh tokens',
    sql: `
      CREATE TABLE login_grants (
        hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('device', 'transaction', 'code')),
        client_id TEXT NOT NULL,
        user_code TEXT UNIQUE,
        data TEXT NOT NULL,
        identity TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'spent')),
        interval_sec INTEGER NOT NULL,
        last_poll_at_ms BIGINT,
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL
      );
      CREATE INDEX login_grants_by_expiry ON login_grants (expires_at_ms);
      CREATE TABLE user_refresh_tokens (
        hash TEXT PRIMARY KEY,
        family TEXT NOT NULL,
        client_id TEXT NOT NULL,
        identity TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        family_expires_at_ms BIGINT NOT NULL,
        spent_at_ms BIGINT,
        access_token_id TEXT NOT NULL,
        access_expires_at_ms BIGINT NOT NULL
      );
      CREATE INDEX user_refresh_tokens_by_family ON user_refresh_tokens (family);
      CREATE INDEX user_refresh_tokens_by_expiry ON user_refresh_tokens (expires_at_ms);
    `,
  },
];

export async function openPgLoginStore(options: PgOptions): Promise<PgLoginStore> {
  const pool = openPgPool(options);
  try {
    await ensureSchema(pool, options.schema);
    await applyPgMigrations(pool, 'login', PG_LOGIN_MIGRATIONS);
  } catch (error) {
    await pool.end();
    throw error;
  }
  return new PgLoginStore(pool);
}

export class PgLoginStore implements LoginStore {
  readonly #pool: pg.Pool;
  readonly #ownsPool: boolean;

  /** `ownsPool`: close() ends the pool (false when the matcher's stores share one). */
  constructor(pool: pg.Pool, options: { ownsPool?: boolean } = {}) {
    this.#pool = pool;
    this.#ownsPool = options.ownsPool ?? true;
  }

  async addGrant(g: NewLoginGrant): Promise<void> {
    await run(() =>
      this.#pool.query(
        `INSERT INTO login_grants (hash, kind, client_id, user_code, data, identity, status, interval_sec,
           created_at_ms, expires_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)`,
        [
          g.hash,
          g.kind,
          g.clientId,
          g.userCode,
          JSON.stringify(g.data),
          g.identity ? JSON.stringify(g.identity) : null,
          g.intervalSec,
          g.createdAtMs,
          g.expiresAtMs,
        ],
      ),
    );
  }

  async pendingDeviceGrant(userCode: string, atMs: number): Promise<LoginGrant | null> {
    const { rows } = await run(() =>
      this.#pool.query<LoginGrantRow>(
        "SELECT * FROM login_grants WHERE user_code = $1 AND kind = 'device' AND status = 'pending' AND expires_at_ms > $2",
        [userCode, atMs],
      ),
    );
    return rows[0] ? grantFromRow(rows[0]) : null;
  }

  async settleDeviceGrant(hash: string, identity: LoginIdentity | null, atMs: number): Promise<boolean> {
    const result = await run(() =>
      this.#pool.query(
        `UPDATE login_grants SET status = $2, identity = $3
         WHERE hash = $1 AND kind = 'device' AND status = 'pending' AND expires_at_ms > $4`,
        [hash, identity ? 'approved' : 'denied', identity && JSON.stringify(identity), atMs],
      ),
    );
    return (result.rowCount ?? 0) > 0;
  }

  async pollDeviceGrant(hash: string, clientId: string, atMs: number): Promise<DevicePoll> {
    return withTransaction(this.#pool, async (client): Promise<DevicePoll> => {
      const row = (await client.query<LoginGrantRow>('SELECT * FROM login_grants WHERE hash = $1 FOR UPDATE', [hash]))
        .rows[0];
      if (!row || row.kind !== 'device') return { outcome: 'unknown' };
      const grant = grantFromRow(row);
      const outcome = judgePoll(grant, clientId, atMs);
      const polled = 'UPDATE login_grants SET last_poll_at_ms = $2, interval_sec = $3 WHERE hash = $1';
      if (outcome === 'slow-down') {
        const intervalSec = grant.intervalSec + SLOW_DOWN_STEP_SEC;
        await client.query(polled, [hash, atMs, intervalSec]);
        return { outcome, intervalSec };
      }
      if (outcome === 'pending') await client.query(polled, [hash, atMs, grant.intervalSec]);
      if (outcome === 'approved') {
        await client.query("UPDATE login_grants SET status = 'spent' WHERE hash = $1", [hash]);
        return { outcome, grant };
      }
      return { outcome } as DevicePoll;
    });
  }

  async takeGrant(hash: string, kind: 'transaction' | 'code', atMs: number): Promise<LoginGrant | null> {
    return withTransaction(this.#pool, async (client) => {
      const row = (await client.query<LoginGrantRow>('SELECT * FROM login_grants WHERE hash = $1 FOR UPDATE', [hash]))
        .rows[0];
      if (!row || row.kind !== kind || row.status === 'spent') return null;
      await client.query("UPDATE login_grants SET status = 'spent' WHERE hash = $1", [hash]);
      const grant = grantFromRow(row);
      return atMs < grant.expiresAtMs ? grant : null;
    });
  }

  async addRefreshToken(t: Omit<UserRefreshToken, 'spentAtMs'>): Promise<void> {
    await run(() =>
      this.#pool.query(
        `INSERT INTO user_refresh_tokens (hash, family, client_id, identity, scope, created_at_ms, expires_at_ms,
           family_expires_at_ms, access_token_id, access_expires_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          t.hash,
          t.family,
          t.clientId,
          JSON.stringify(t.identity),
          t.scope,
          t.createdAtMs,
          t.expiresAtMs,
          t.familyExpiresAtMs,
          t.accessTokenId,
          t.accessExpiresAtMs,
        ],
      ),
    );
  }

  async spendRefreshToken(hash: string, atMs: number): Promise<RefreshSpend> {
    return withTransaction(this.#pool, async (client): Promise<RefreshSpend> => {
      const row = (
        await client.query<RefreshTokenRow>('SELECT * FROM user_refresh_tokens WHERE hash = $1 FOR UPDATE', [hash])
      ).rows[0];
      if (!row) return { outcome: 'unknown' };
      const token = refreshTokenFromRow(row);
      if (token.spentAtMs !== null) return { outcome: 'already-spent', token };
      if (atMs >= token.expiresAtMs) return { outcome: 'expired', token };
      await client.query('UPDATE user_refresh_tokens SET spent_at_ms = $1 WHERE hash = $2', [atMs, hash]);
      return { outcome: 'spent', token: { ...token, spentAtMs: atMs } };
    });
  }

  async revokeRefreshFamily(family: string, atMs: number): Promise<{ tokenId: string; expiresAtMs: number }[]> {
    return withTransaction(this.#pool, async (client) => {
      const members = (
        await client.query<RefreshTokenRow>(
          'SELECT * FROM user_refresh_tokens WHERE family = $1 ORDER BY hash FOR UPDATE',
          [family],
        )
      ).rows.map(refreshTokenFromRow);
      await client.query('UPDATE user_refresh_tokens SET spent_at_ms = $1 WHERE family = $2 AND spent_at_ms IS NULL', [
        atMs,
        family,
      ]);
      return members
        .filter((member) => member.accessExpiresAtMs > atMs)
        .map((member) => ({ tokenId: member.accessTokenId, expiresAtMs: member.accessExpiresAtMs }));
    });
  }

  async purgeExpired(atMs: number): Promise<{ grants: number; refreshTokens: number }> {
    const grants = await run(() => this.#pool.query('DELETE FROM login_grants WHERE expires_at_ms <= $1', [atMs]));
    const refresh = await run(() =>
      this.#pool.query('DELETE FROM user_refresh_tokens WHERE expires_at_ms <= $1 AND access_expires_at_ms <= $1', [
        atMs,
      ]),
    );
    return { grants: grants.rowCount ?? 0, refreshTokens: refresh.rowCount ?? 0 };
  }

  async close(): Promise<void> {
    if (this.#ownsPool) await this.#pool.end().catch(() => undefined);
  }
}
