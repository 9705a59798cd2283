/**
 * The credential store: pilot secrets and refresh tokens (only their sha256 is stored) and the list of
 * revoked token ids. Kept apart from the job store: it has its own migrations, and the CLI opens it
 * on the same database file to revoke tokens while the matcher runs (the matcher looks each token id
 * up on every verification, so a revocation takes effect on the next request).
 */

export const PILOT_CREDENTIAL_KINDS = ['secret', 'refresh'] as const;
/** `secret`: minted for one pilot, exchanged once; `refresh`: handed out with each pilot token, used once. */
export type PilotCredentialKind = (typeof PILOT_CREDENTIAL_KINDS)[number];

export interface PilotCredential {
  /** sha256 (hex) of the credential; the credential itself is never stored. */
  hash: string;
  kind: PilotCredentialKind;
  vo: string;
  site: string;
  pilotStamp: string;
  /** The secret and every refresh token descended from it share a family: reuse of one revokes all. */
  family: string;
  createdAtMs: number;
  expiresAtMs: number;
  /** No refresh token of the family outlives this (the pilot's longest life). */
  familyExpiresAtMs: number;
  createdBy: string;
  spentAtMs: number | null;
  /** Refresh tokens: the pilot token issued together with it, revoked with the family. */
  accessTokenId: string | null;
  accessExpiresAtMs: number | null;
}

export type NewPilotCredential = Omit<PilotCredential, 'spentAtMs'>;

export type SpendOutcome =
  | { outcome: 'spent'; credential: PilotCredential }
  | { outcome: 'unknown' }
  | { outcome: 'expired'; credential: PilotCredential }
  | { outcome: 'already-spent'; credential: PilotCredential }
  | { outcome: 'wrong-stamp'; credential: PilotCredential };

export interface TokenRevocation {
  tokenId: string;
  /** Kept until then: after it, the token is refused as expired anyway. */
  expiresAtMs: number;
  reason: string;
  revokedBy: string;
  atMs: number;
}

/** Failed pilot-token exchanges from one address, counted in a window that starts at the first one. */
export interface FailureWindow {
  failures: number;
  startedAtMs: number;
  endsAtMs: number;
}

export interface CredentialStore {
  addPilotCredential(credential: NewPilotCredential): Promise<void>;
  /**
   * Atomically checks and spends a credential of this kind presented by this pilot stamp. Only an
   * unspent, unexpired credential of the right stamp is spent; nothing changes otherwise.
   */
  spendPilotCredential(
    hash: string,
    kind: PilotCredentialKind,
    pilotStamp: string,
    atMs: number,
  ): Promise<SpendOutcome>;
  /**
   * Kills a whole family (a reused secret or refresh token means it leaked): every unspent member is
   * spent, and the pilot tokens issued with them are revoked. Returns the token ids revoked.
   */
  revokePilotFamily(family: string, atMs: number, reason: string): Promise<string[]>;
  /** True when the id was not revoked before. */
  revokeToken(revocation: TokenRevocation): Promise<boolean>;
  isTokenRevoked(tokenId: string): Promise<boolean>;
  /**
   * Counts a failed exchange from `address`: in its current window, or in a new one of `windowMs`
   * starting now when there is none (or it has ended). Every matcher sharing the store counts alike.
   */
  recordExchangeFailure(address: string, atMs: number, windowMs: number): Promise<FailureWindow>;
  /** The address's window that holds `atMs`, if any. */
  exchangeFailures(address: string, atMs: number): Promise<FailureWindow | null>;
  /** Deletes credentials and revocations whose expiry has passed (and ended failure windows). */
  purgeExpired(atMs: number): Promise<{ credentials: number; revokedTokens: number }>;
  close(): Promise<void>;
}
