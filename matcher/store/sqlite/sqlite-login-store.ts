/**
 * LoginStore on SQLite, on the matcher's database file with its own connection and migration table
 * (versions from 200). Each one-time step is one IMMEDIATE transaction, so two processes presenting
 * the same device code, state, code or refresh token cannot both pass.
 */
import Database from 'better-sqlite3';
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
import { openSqliteConnection } from './open-database.ts';
import { applyMigrations, type Migration } from './migrations.ts';

export const LOGIN_MIGRATIONS: readonly Migration[] = [
  {
    version: 200,
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
        last_poll_at_ms INTEGER,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL
      );
      CREATE INDEX login_grants_by_expiry ON login_grants (expires_at_ms);

      CREATE TABLE user_refresh_tokens (
        hash TEXT PRIMARY KEY,
        family TEXT NOT NULL,
        client_id TEXT NOT NULL,
        identity TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        family_expires_at_ms INTEGER NOT NULL,
        spent_at_ms INTEGER,
        access_token_id TEXT NOT NULL,
        access_expires_at_ms INTEGER NOT NULL
      );
      CREATE INDEX user_refresh_tokens_by_family ON user_refresh_tokens (family);
      CREATE INDEX user_refresh_tokens_by_expiry ON user_refresh_tokens (expires_at_ms);
    `,
  },
];

export function openSqliteLoginStore(options: { path: string; autoCheckpoint?: boolean }): SqliteLoginStore {
  const db = openSqliteConnection({
    path: options.path,
    ...(options.autoCheckpoint === undefined ? {} : { autoCheckpoint: options.autoCheckpoint }),
  });
  applyMigrations(db, 'login_migrations', LOGIN_MIGRATIONS);
  return new SqliteLoginStore(db);
}

export class SqliteLoginStore implements LoginStore {
  readonly #db: Database.Database;
  readonly #sql;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#sql = {
      insertGrant: db.prepare(`
        INSERT INTO login_grants (hash, kind, client_id, user_code, data, identity, status, interval_sec,
          created_at_ms, expires_at_ms)
        VALUES (@hash, @kind, @clientId, @userCode, @data, @identity, 'pending', @intervalSec, @createdAtMs, @expiresAtMs)`),
      grant: db.prepare('SELECT * FROM login_grants WHERE hash = ?'),
      byUserCode: db.prepare(
        "SELECT * FROM login_grants WHERE user_code = ? AND kind = 'device' AND status = 'pending' AND expires_at_ms > ?",
      ),
      settle: db.prepare(`
        UPDATE login_grants SET status = @status, identity = @identity
        WHERE hash = @hash AND kind = 'device' AND status = 'pending' AND expires_at_ms > @atMs`),
      polled: db.prepare('UPDATE login_grants SET last_poll_at_ms = ?, interval_sec = ? WHERE hash = ?'),
      spendGrant: db.prepare("UPDATE login_grants SET status = 'spent' WHERE hash = ?"),
      insertRefresh: db.prepare(`
        INSERT INTO user_refresh_tokens (hash, family, client_id, identity, scope, created_at_ms, expires_at_ms,
          family_expires_at_ms, access_token_id, access_expires_at_ms)
        VALUES (@hash, @family, @clientId, @identity, @scope, @createdAtMs, @expiresAtMs, @familyExpiresAtMs,
          @accessTokenId, @accessExpiresAtMs)`),
      refresh: db.prepare('SELECT * FROM user_refresh_tokens WHERE hash = ?'),
      spendRefresh: db.prepare('UPDATE user_refresh_tokens SET spent_at_ms = ? WHERE hash = ?'),
      family: db.prepare('SELECT * FROM user_refresh_tokens WHERE family = ?'),
      spendFamily: db.prepare(
        'UPDATE user_refresh_tokens SET spent_at_ms = ? WHERE family = ? AND spent_at_ms IS NULL',
      ),
      purgeGrants: db.prepare('DELETE FROM login_grants WHERE expires_at_ms <= ?'),
      purgeRefresh: db.prepare(
        'DELETE FROM user_refresh_tokens WHERE expires_at_ms <= ? AND access_expires_at_ms <= ?',
      ),
    };
  }

  async addGrant(grant: NewLoginGrant): Promise<void> {
    this.#sql.insertGrant.run({
      ...grant,
      data: JSON.stringify(grant.data),
      identity: grant.identity ? JSON.stringify(grant.identity) : null,
    });
  }

  async pendingDeviceGrant(userCode: string, atMs: number): Promise<LoginGrant | null> {
    const row = this.#sql.byUserCode.get(userCode, atMs) as LoginGrantRow | undefined;
    return row ? grantFromRow(row) : null;
  }

  async settleDeviceGrant(hash: string, identity: LoginIdentity | null, atMs: number): Promise<boolean> {
    const status = identity ? 'approved' : 'denied';
    const result = this.#sql.settle.run({ hash, status, identity: identity && JSON.stringify(identity), atMs });
    return result.changes > 0;
  }

  async pollDeviceGrant(hash: string, clientId: string, atMs: number): Promise<DevicePoll> {
    return this.#db
      .transaction((): DevicePoll => {
        const row = this.#sql.grant.get(hash) as LoginGrantRow | undefined;
        if (!row || row.kind !== 'device') return { outcome: 'unknown' };
        const grant = grantFromRow(row);
        const outcome = judgePoll(grant, clientId, atMs);
        if (outcome === 'slow-down') {
          const intervalSec = grant.intervalSec + SLOW_DOWN_STEP_SEC;
          this.#sql.polled.run(atMs, intervalSec, hash);
          return { outcome, intervalSec };
        }
        if (outcome === 'pending') this.#sql.polled.run(atMs, grant.intervalSec, hash);
        if (outcome === 'approved') {
          this.#sql.spendGrant.run(hash);
          return { outcome, grant };
        }
        return { outcome } as DevicePoll;
      })
      .immediate();
  }

  async takeGrant(hash: string, kind: 'transaction' | 'code', atMs: number): Promise<LoginGrant | null> {
    return this.#db
      .transaction((): LoginGrant | null => {
        const row = this.#sql.grant.get(hash) as LoginGrantRow | undefined;
        if (!row || row.kind !== kind || row.status === 'spent') return null;
        this.#sql.spendGrant.run(hash);
        const grant = grantFromRow(row);
        return atMs < grant.expiresAtMs ? grant : null;
      })
      .immediate();
  }

  async addRefreshToken(token: Omit<UserRefreshToken, 'spentAtMs'>): Promise<void> {
    this.#sql.insertRefresh.run({ ...token, identity: JSON.stringify(token.identity) });
  }

  async spendRefreshToken(hash: string, atMs: number): Promise<RefreshSpend> {
    return this.#db
      .transaction((): RefreshSpend => {
        const row = this.#sql.refresh.get(hash) as RefreshTokenRow | undefined;
        if (!row) return { outcome: 'unknown' };
        const token = refreshTokenFromRow(row);
        if (token.spentAtMs !== null) return { outcome: 'already-spent', token };
        if (atMs >= token.expiresAtMs) return { outcome: 'expired', token };
        this.#sql.spendRefresh.run(atMs, hash);
        return { outcome: 'spent', token: { ...token, spentAtMs: atMs } };
      })
      .immediate();
  }

  async revokeRefreshFamily(family: string, atMs: number): Promise<{ tokenId: string; expiresAtMs: number }[]> {
    return this.#db
      .transaction(() => {
        const members = (this.#sql.family.all(family) as RefreshTokenRow[]).map(refreshTokenFromRow);
        this.#sql.spendFamily.run(atMs, family);
        return members
          .filter((member) => member.accessExpiresAtMs > atMs)
          .map((member) => ({ tokenId: member.accessTokenId, expiresAtMs: member.accessExpiresAtMs }));
      })
      .immediate();
  }

  async purgeExpired(atMs: number): Promise<{ grants: number; refreshTokens: number }> {
    return {
      grants: this.#sql.purgeGrants.run(atMs).changes,
      refreshTokens: this.#sql.purgeRefresh.run(atMs, atMs).changes,
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
