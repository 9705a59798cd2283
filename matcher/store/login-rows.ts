/**
 * Login grants and user refresh tokens as both stores keep them: one table shape (snake_case
 * columns, times in milliseconds since the epoch, JSON as text) and one way back to the model.
 */
import type { LoginGrant, LoginGrantKind, LoginIdentity, UserRefreshToken } from './login-store.ts';

export interface LoginGrantRow {
  hash: string;
  kind: LoginGrantKind;
  client_id: string;
  user_code: string | null;
  data: string;
  identity: string | null;
  status: LoginGrant['status'];
  interval_sec: number;
  last_poll_at_ms: number | null;
  created_at_ms: number;
  expires_at_ms: number;
}

export function grantFromRow(row: LoginGrantRow): LoginGrant {
  return {
    hash: row.hash,
    kind: row.kind,
    clientId: row.client_id,
    userCode: row.user_code,
    data: JSON.parse(row.data) as Record<string, unknown>,
    identity: row.identity === null ? null : (JSON.parse(row.identity) as LoginIdentity),
    status: row.status,
    intervalSec: Number(row.interval_sec),
    lastPollAtMs: row.last_poll_at_ms === null ? null : Number(row.last_poll_at_ms),
    createdAtMs: Number(row.created_at_ms),
    expiresAtMs: Number(row.expires_at_ms),
  };
}

export interface RefreshTokenRow {
  hash: string;
  family: string;
  client_id: string;
  identity: string;
  scope: string;
  created_at_ms: number;
  expires_at_ms: number;
  family_expires_at_ms: number;
  spent_at_ms: number | null;
  access_token_id: string;
  access_expires_at_ms: number;
}

export function refreshTokenFromRow(row: RefreshTokenRow): UserRefreshToken {
  return {
    hash: row.hash,
    family: row.family,
    clientId: row.client_id,
    identity: JSON.parse(row.identity) as LoginIdentity,
    scope: row.scope,
    createdAtMs: Number(row.created_at_ms),
    expiresAtMs: Number(row.expires_at_ms),
    familyExpiresAtMs: Number(row.family_expires_at_ms),
    spentAtMs: row.spent_at_ms === null ? null : Number(row.spent_at_ms),
    accessTokenId: row.access_token_id,
    accessExpiresAtMs: Number(row.access_expires_at_ms),
  };
}

/** How a poll of a device grant row turns out, the same on both stores (RFC 8628 §3.5). */
export function judgePoll(
  grant: LoginGrant,
  clientId: string,
  atMs: number,
): 'unknown' | 'expired' | 'slow-down' | 'pending' | 'denied' | 'approved' {
  if (grant.clientId !== clientId || grant.status === 'spent') return 'unknown';
  if (atMs >= grant.expiresAtMs) return 'expired';
  if (grant.status === 'denied') return 'denied';
  if (grant.status === 'approved') return 'approved';
  if (grant.lastPollAtMs !== null && atMs - grant.lastPollAtMs < grant.intervalSec * 1000) return 'slow-down';
  return 'pending';
}

/** RFC 8628 §3.5: each slow_down adds 5 seconds to the interval the client must keep. */
export const SLOW_DOWN_STEP_SEC = 5;
