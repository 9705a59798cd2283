/**
 * What user login keeps between requests, in the store so that any replica can answer any step:
 *  - **grants**, each named by the sha256 of a secret that only its holder knows:
 *    `device` (RFC 8628: the device code the CLI polls with, and the user code typed in the browser),
 *    `transaction` (a trip to the identity provider: the `state` sent there, with the PKCE verifier
 *    and nonce of that trip), `code` (an authorization code handed to the web application, bound to its
 *    PKCE challenge and redirect URI);
 *  - **refresh tokens** of users, rotated at each use; presenting a spent one revokes its family.
 * Secrets themselves are never stored. Every one-time step is atomic: two requests with the same
 * device code, state, code or refresh token cannot both succeed, even on two replicas.
 */
import type { Property } from '../../shared/auth/claims.ts';

export const LOGIN_GRANT_KINDS = ['device', 'transaction', 'code'] as const;
export type LoginGrantKind = (typeof LOGIN_GRANT_KINDS)[number];

/** Who signed in, as the identity provider's claims mapped them. */
export interface LoginIdentity {
  subject: string;
  vo: string;
  group: string;
  properties: Property[];
  /** The identity provider that vouched for them. */
  issuer: string;
}

export interface LoginGrant {
  hash: string;
  kind: LoginGrantKind;
  clientId: string;
  /** Device grants: the code the user types (unique among device grants). */
  userCode: string | null;
  /** What the step carries (requested scope, redirect URI, PKCE challenge, the IdP trip's checks). */
  data: Record<string, unknown>;
  /** Device grants once the user signed in, and authorization codes. */
  identity: LoginIdentity | null;
  status: 'pending' | 'approved' | 'denied' | 'spent';
  /** Device grants: the least time between two polls; grows by 5 s at each poll that comes too soon. */
  intervalSec: number;
  lastPollAtMs: number | null;
  createdAtMs: number;
  expiresAtMs: number;
}

export type NewLoginGrant = Omit<LoginGrant, 'status' | 'lastPollAtMs' | 'identity'> & {
  identity?: LoginIdentity | null;
};

/** What a device-code poll learns (RFC 8628 §3.5). */
export type DevicePoll =
  | { outcome: 'unknown' }
  | { outcome: 'expired' }
  | { outcome: 'slow-down'; intervalSec: number }
  | { outcome: 'pending' }
  | { outcome: 'denied' }
  | { outcome: 'approved'; grant: LoginGrant };

export interface UserRefreshToken {
  hash: string;
  /** Every token rotated from one sign-in shares a family; reuse of a spent one revokes them all. */
  family: string;
  clientId: string;
  identity: LoginIdentity;
  scope: string;
  createdAtMs: number;
  expiresAtMs: number;
  /** No token of the family outlives this (a sign-in's longest life). */
  familyExpiresAtMs: number;
  spentAtMs: number | null;
  /** The access token issued with it, revoked with the family. */
  accessTokenId: string;
  accessExpiresAtMs: number;
}

export type RefreshSpend =
  | { outcome: 'spent'; token: UserRefreshToken }
  | { outcome: 'unknown' }
  | { outcome: 'expired'; token: UserRefreshToken }
  | { outcome: 'already-spent'; token: UserRefreshToken };

export interface LoginStore {
  addGrant(grant: NewLoginGrant): Promise<void>;
  /** A device grant still waiting for its user (pending, not expired), by the code they typed. */
  pendingDeviceGrant(userCode: string, atMs: number): Promise<LoginGrant | null>;
  /** The user signed in (identity) or refused (null): true when the grant was still pending. */
  settleDeviceGrant(hash: string, identity: LoginIdentity | null, atMs: number): Promise<boolean>;
  /**
   * One poll of the device code by `clientId`: too soon after the last one → slow-down (and the
   * interval grows); approved → the grant, spent at once so that only one poll gets tokens.
   */
  pollDeviceGrant(hash: string, clientId: string, atMs: number): Promise<DevicePoll>;
  /** A transaction or code, taken once: null when unknown, of another kind, expired or taken. */
  takeGrant(hash: string, kind: 'transaction' | 'code', atMs: number): Promise<LoginGrant | null>;

  addRefreshToken(token: Omit<UserRefreshToken, 'spentAtMs'>): Promise<void>;
  spendRefreshToken(hash: string, atMs: number): Promise<RefreshSpend>;
  /** Spends every token of the family; answers the access tokens still alive (to revoke). */
  revokeRefreshFamily(family: string, atMs: number): Promise<{ tokenId: string; expiresAtMs: number }[]>;

  /** Deletes grants and refresh tokens past their expiry (and their access tokens'). */
  purgeExpired(atMs: number): Promise<{ grants: number; refreshTokens: number }>;
  close(): Promise<void>;
}
