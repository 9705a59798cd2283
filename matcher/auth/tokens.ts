/**
 * Mints and verifies tokens. Verification failures map to stable codes: TOKEN_MISSING, TOKEN_EXPIRED,
 * TOKEN_INVALID, TOKEN_REVOKED (and IDP_UNAVAILABLE for external issuers). Claims are checked for
 * shape, not trusted.
 *
 * Local tokens (`iss` = TOKEN_ISSUER) are checked against the key ring, refreshed first so that a key
 * rotated or revoked by another process counts at once; then their `jti` is looked up in the revoked
 * list (one indexed read). Tokens of a trusted external issuer go to OidcIssuers; their ids can be
 * revoked the same way.
 */
import { randomUUID } from 'node:crypto';
import { signCompactEdDsa, signCompactHs256 } from './jws.ts';

/** Job tokens only (see VerifyingKey.jobTokenSecret). */
const JOB_TOKEN_ALGORITHM = 'HS256';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { PilothouseError } from '../../shared/errors.ts';
import {
  PROPERTIES,
  TOKEN_ISSUER,
  TOKEN_KINDS,
  type Principal,
  type Property,
  type TokenKind,
} from '../../shared/auth/claims.ts';
import type { Clock } from '../../shared/clock.ts';
import type { CredentialStore } from '../store/credential-store.ts';
import { SIGNING_ALGORITHM, type KeyRing } from './key-ring.ts';
import { externalTokenId, type OidcIssuers } from './oidc.ts';

/** Tolerated lag between two processes' clocks when checking a token's lifetime against its key. */
const LIFETIME_SLACK_SEC = 60;

export interface TokenRequest {
  kind: TokenKind;
  subject: string;
  vo: string;
  group: string;
  properties: Property[];
  site?: string | undefined;
  pilotStamp?: string | undefined;
  jobId?: number | undefined;
  attempt?: number | undefined;
  ttlSec: number;
}

export interface IssuedToken {
  token: string;
  tokenId: string;
  expiresAtMs: number;
}

interface PilothouseClaims extends JWTPayload {
  kind: TokenKind;
  vo: string;
  grp: string;
  props: Property[];
  site?: string;
  pst?: string;
  job?: number;
  att?: number;
}

/** Where revoked token ids are looked up (the credential store). */
export type RevocationList = Pick<CredentialStore, 'isTokenRevoked'>;

export interface TokenServiceDeps {
  keys: KeyRing;
  clock: Clock;
  revocations?: RevocationList | undefined;
  externalIssuers?: OidcIssuers | undefined;
}

/** Tokens remembered as verified (the oldest are forgotten first). */
const MAX_VERIFIED_TOKENS = 10_000;

/** How long issuing trusts its last look at the key directory. */
export const SIGNER_RECHECK_MS = 1_000;

export class TokenService {
  readonly #keys: KeyRing;
  readonly #clock: Clock;
  readonly #revocations: RevocationList | undefined;
  readonly #external: OidcIssuers | undefined;
  #signerCheckedAtMs = -Infinity;
  /**
   * Tokens whose signature was checked, by their exact text: a client sends the same token with every
   * request, and checking an EdDSA signature (through WebCrypto, on the thread pool) was most of the
   * cost of authenticating one. The key's status and the expiry are checked at every use still.
   */
  readonly #verified = new Map<string, { kid: string; payload: JWTPayload }>();

  constructor(deps: TokenServiceDeps) {
    this.#keys = deps.keys;
    this.#clock = deps.clock;
    this.#revocations = deps.revocations;
    this.#external = deps.externalIssuers;
  }

  async issue(request: TokenRequest): Promise<string> {
    return (await this.issueWithId(request)).token;
  }

  /** Signs with the current key; refuses a lifetime above what the key may sign (its retire delay). */
  async issueWithId(request: TokenRequest): Promise<IssuedToken> {
    // Every match mints a job token, so issuing re-reads the key directory at most once per
    // SIGNER_RECHECK_MS. Signing with a key rotated or revoked a moment ago is harmless: a rotated key
    // verifies while it retires, and tokens of a revoked key are refused where they are verified
    // (verification re-reads the directory every time).
    const nowMs = this.#clock.nowMs();
    if (nowMs - this.#signerCheckedAtMs >= SIGNER_RECHECK_MS) {
      await this.#keys.refresh();
      this.#signerCheckedAtMs = nowMs;
    }
    const key = this.#keys.signer();
    if (!Number.isInteger(request.ttlSec) || request.ttlSec <= 0 || request.ttlSec > key.maxTokenTtlSec) {
      throw new PilothouseError(
        'CONFIG_INVALID',
        `a token lives between 1 and ${key.maxTokenTtlSec} s (the signing key's limit), not ${request.ttlSec}`,
        { field: 'ttlSec' },
      );
    }
    const nowSec = Math.floor(this.#clock.nowMs() / 1000);
    const claims: PilothouseClaims = {
      kind: request.kind,
      vo: request.vo,
      grp: request.group,
      props: request.properties,
    };
    if (request.site !== undefined) claims.site = request.site;
    if (request.pilotStamp !== undefined) claims.pst = request.pilotStamp;
    if (request.jobId !== undefined) claims.job = request.jobId;
    if (request.attempt !== undefined) claims.att = request.attempt;
    const tokenId = randomUUID();
    const expiresAtSec = nowSec + request.ttlSec;
    const payload = {
      ...claims,
      iss: TOKEN_ISSUER,
      sub: request.subject,
      iat: nowSec,
      exp: expiresAtSec,
      jti: tokenId,
    };
    const token =
      request.kind === 'job' && key.jobTokenSecret
        ? signCompactHs256({ alg: JOB_TOKEN_ALGORITHM, kid: key.kid, typ: 'JWT' }, payload, key.jobTokenSecret)
        : signCompactEdDsa({ alg: SIGNING_ALGORITHM, kid: key.kid, typ: 'JWT' }, payload, key.privateKey);
    return { token, tokenId, expiresAtMs: expiresAtSec * 1000 };
  }

  async verify(token: string | undefined): Promise<Principal> {
    if (!token) throw new PilothouseError('TOKEN_MISSING', 'a bearer token is required');
    let issuer: string | undefined;
    try {
      issuer = decodeJwt(token).iss;
    } catch (error) {
      throw new PilothouseError('TOKEN_INVALID', 'the token is not a JWT', {}, { cause: error });
    }
    const principal =
      issuer === TOKEN_ISSUER
        ? await this.#verifyLocal(token)
        : issuer !== undefined && this.#external?.trusts(issuer)
          ? await this.#external.verify(token, issuer)
          : null;
    if (!principal)
      throw new PilothouseError('TOKEN_INVALID', 'the token was issued by an issuer this matcher does not trust');
    await this.#assertNotRevoked(principal);
    return principal;
  }

  /**
   * For sessions that outlive one request (the pilot WebSocket): is the credential they were opened
   * with still good? Its id must not be revoked, and its signing key must not be revoked or dropped.
   */
  async assertStillValid(principal: Principal): Promise<void> {
    if (principal.keyId !== undefined) {
      await this.#keys.refresh();
      const lookup = this.#keys.lookup(principal.keyId);
      if (lookup.status === 'revoked')
        throw new PilothouseError('TOKEN_REVOKED', 'the key that signed the token was revoked');
      if (lookup.status === 'unknown')
        throw new PilothouseError('TOKEN_INVALID', 'the key that signed the token is gone');
    }
    await this.#assertNotRevoked(principal);
  }

  async #assertNotRevoked(principal: Principal): Promise<void> {
    if (this.#revocations && (await this.#revocations.isTokenRevoked(principal.tokenId))) {
      throw new PilothouseError('TOKEN_REVOKED', 'the token has been revoked');
    }
  }

  async #verifyLocal(token: string): Promise<Principal> {
    let kid: string | undefined;
    let alg: string | undefined;
    try {
      ({ kid, alg } = decodeProtectedHeader(token));
    } catch (error) {
      throw new PilothouseError('TOKEN_INVALID', 'the token header is not valid', {}, { cause: error });
    }
    if (!kid) throw new PilothouseError('TOKEN_INVALID', 'the token names no signing key');
    await this.#keys.refresh();
    const lookup = this.#keys.lookup(kid);
    if (lookup.status === 'revoked')
      throw new PilothouseError('TOKEN_REVOKED', 'the key that signed the token was revoked');
    if (lookup.status === 'unknown')
      throw new PilothouseError('TOKEN_INVALID', 'the token was signed by an unknown key');
    // The algorithm picks which of the key's two secrets checks the signature; each path accepts only
    // its own algorithm, and an HS256 token must be a job token (checked after the claims are read).
    const hmac = alg === JOB_TOKEN_ALGORITHM;
    if (hmac && !lookup.key.jobTokenSecret)
      throw new PilothouseError('TOKEN_INVALID', 'the key that signed the token is gone');
    // The same bytes were verified before with this key (whose status was just checked again): only
    // their expiry can have changed.
    const known = this.#verified.get(token);
    if (known !== undefined && known.kid === kid) {
      if ((known.payload.exp as number) * 1000 <= this.#clock.nowMs()) {
        this.#verified.delete(token);
        throw new PilothouseError('TOKEN_EXPIRED', 'the token has expired');
      }
      return principalFromClaims(known.payload, kid);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, hmac ? (lookup.key.jobTokenSecret as Buffer) : lookup.key.publicKey, {
        issuer: TOKEN_ISSUER,
        algorithms: [hmac ? JOB_TOKEN_ALGORITHM : SIGNING_ALGORITHM],
        requiredClaims: ['exp', 'iat', 'jti', 'sub'],
        currentDate: new Date(this.#clock.nowMs()),
      }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new PilothouseError('TOKEN_EXPIRED', 'the token has expired');
      throw new PilothouseError('TOKEN_INVALID', 'the token is not valid', {}, { cause: error });
    }
    // The key's retire time assumes no token it signed lives longer than its limit.
    if ((payload.exp as number) - (payload.iat as number) > lookup.key.maxTokenTtlSec + LIFETIME_SLACK_SEC) {
      throw new PilothouseError('TOKEN_INVALID', 'the token lives longer than its signing key allows');
    }
    const principal = principalFromClaims(payload, kid);
    if (hmac && principal.kind !== 'job')
      throw new PilothouseError('TOKEN_INVALID', 'only job tokens are signed HS256');
    if (this.#verified.size >= MAX_VERIFIED_TOKENS) {
      // The oldest remembered first (a Map keeps insertion order).
      this.#verified.delete(this.#verified.keys().next().value as string);
    }
    this.#verified.set(token, { kid, payload });
    return principal;
  }
}

/** The id under which a token is (or would be) revoked, read without verifying it (for `token revoke`). */
export function tokenIdOf(token: string): { tokenId: string; expiresAtMs: number | null } {
  let payload: JWTPayload;
  try {
    payload = decodeJwt(token);
  } catch (error) {
    throw new PilothouseError('TOKEN_INVALID', 'the token is not a JWT', {}, { cause: error });
  }
  const expiresAtMs = typeof payload.exp === 'number' ? payload.exp * 1000 : null;
  if (payload.iss === TOKEN_ISSUER) {
    if (typeof payload.jti !== 'string') throw new PilothouseError('TOKEN_INVALID', 'the token has no jti');
    return { tokenId: payload.jti, expiresAtMs };
  }
  return { tokenId: externalTokenId(payload, token), expiresAtMs };
}

function principalFromClaims(payload: JWTPayload, keyId: string): Principal {
  const claims = payload as Partial<PilothouseClaims>;
  const kind = claims.kind;
  const props = Array.isArray(claims.props) ? claims.props : [];
  if (
    !kind ||
    !TOKEN_KINDS.includes(kind) ||
    typeof payload.sub !== 'string' ||
    typeof payload.jti !== 'string' ||
    typeof claims.vo !== 'string' ||
    typeof claims.grp !== 'string' ||
    typeof payload.exp !== 'number' ||
    !props.every((p) => (PROPERTIES as readonly string[]).includes(p))
  ) {
    throw new PilothouseError('TOKEN_INVALID', 'the token lacks the claims of a Pilothouse token');
  }
  const principal: Principal = {
    kind,
    subject: payload.sub,
    vo: claims.vo,
    group: claims.grp,
    properties: props,
    issuer: TOKEN_ISSUER,
    keyId,
    tokenId: payload.jti,
    expiresAtMs: payload.exp * 1000,
  };
  if (typeof claims.site === 'string') principal.site = claims.site;
  if (typeof claims.pst === 'string') principal.pilotStamp = claims.pst;
  if (typeof claims.job === 'number') principal.jobId = claims.job;
  if (typeof claims.att === 'number') principal.attempt = claims.att;
  if (kind === 'job' && (principal.jobId === undefined || principal.attempt === undefined)) {
    throw new PilothouseError('TOKEN_INVALID', 'a job token must name its job and attempt');
  }
  if (kind === 'pilot' && principal.site === undefined) {
    throw new PilothouseError('TOKEN_INVALID', 'a pilot token must name its site');
  }
  return principal;
}
