/**
 * Pilot credentials (DiracX's secret exchange, PR #421):
 *  - an administrator (later the site director) mints a one-time, expiring **secret** for one pilot,
 *    constrained to a VO, a site and the pilot's stamp. Only its sha256 is stored;
 *  - the pilot exchanges it (`POST /api/auth/pilot-token {pilotStamp, secret}`) for a short-lived
 *    **pilot token** bound to that stamp, VO and site, plus a one-time **refresh token**;
 *  - before its pilot token expires, the pilot presents the refresh token (`{pilotStamp,
 *    refreshToken}`) and gets a new pair; the old refresh token is spent. Refresh tokens never outlive
 *    the family's deadline (`pilotMaxLifetimeSec` after the exchange);
 *  - presenting a spent secret or refresh token means it leaked (or was replayed): it is refused
 *    (PILOT_SECRET_SPENT), logged, and the whole family is revoked — every refresh token and every
 *    pilot token descended from the secret (RFC 6749 §10.4, as DiracX does for refresh tokens).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { PilothouseError } from '../../shared/errors.ts';
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/logger.ts';
import type { CredentialStore, PilotCredential, PilotCredentialKind } from '../store/credential-store.ts';
import type { TokenService } from './tokens.ts';

const SECRET_PREFIX = 'phps_';
const REFRESH_PREFIX = 'phpr_';

export interface PilotCredentialLimits {
  /** Pilot access tokens: short, like DiracX's 20 min access tokens. */
  accessTokenTtlSec: number;
  /** A refresh token not used within this long expires. */
  refreshTokenTtlSec: number;
  /** No refresh token of a family outlives the exchange by more than this (the longest pilot life). */
  maxPilotLifetimeSec: number;
  /** Secrets wait in batch queues: default and cap of their lifetime. */
  defaultSecretTtlSec: number;
  maxSecretTtlSec: number;
}

export interface MintedSecret {
  secret: string;
  pilotStamp: string;
  vo: string;
  site: string;
  expiresAtMs: number;
}

export interface PilotTokenGrant {
  pilotToken: string;
  expiresAtMs: number;
  refreshToken: string;
  refreshExpiresAtMs: number;
  pilotStamp: string;
  vo: string;
  site: string;
}

export type ExchangeRequest = { pilotStamp: string; secret: string } | { pilotStamp: string; refreshToken: string };

export function hashCredential(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

export class PilotCredentialService {
  readonly #store: CredentialStore;
  readonly #tokens: TokenService;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #limits: PilotCredentialLimits;

  constructor(deps: {
    store: CredentialStore;
    tokens: TokenService;
    clock: Clock;
    logger: Logger;
    limits: PilotCredentialLimits;
  }) {
    this.#store = deps.store;
    this.#tokens = deps.tokens;
    this.#clock = deps.clock;
    this.#logger = deps.logger;
    this.#limits = deps.limits;
  }

  get limits(): PilotCredentialLimits {
    return this.#limits;
  }

  async mintSecret(request: {
    vo: string;
    site: string;
    pilotStamp: string;
    ttlSec?: number | undefined;
    createdBy: string;
  }): Promise<MintedSecret> {
    const ttlSec = request.ttlSec ?? this.#limits.defaultSecretTtlSec;
    if (!Number.isInteger(ttlSec) || ttlSec <= 0 || ttlSec > this.#limits.maxSecretTtlSec) {
      throw new PilothouseError(
        'VALIDATION_FAILED',
        `ttlSec must be an integer from 1 to ${this.#limits.maxSecretTtlSec}`,
        { field: 'ttlSec' },
      );
    }
    const secret = SECRET_PREFIX + randomBytes(32).toString('base64url');
    const nowMs = this.#clock.nowMs();
    const expiresAtMs = nowMs + ttlSec * 1000;
    await this.#store.addPilotCredential({
      hash: hashCredential(secret),
      kind: 'secret',
      vo: request.vo,
      site: request.site,
      pilotStamp: request.pilotStamp,
      family: randomUUID(),
      createdAtMs: nowMs,
      expiresAtMs,
      // Fixed at the exchange; a secret's family cannot refresh before it is exchanged.
      familyExpiresAtMs: expiresAtMs + this.#limits.maxPilotLifetimeSec * 1000,
      createdBy: request.createdBy,
      accessTokenId: null,
      accessExpiresAtMs: null,
    });
    this.#logger.info(
      { pilotStamp: request.pilotStamp, vo: request.vo, site: request.site, createdBy: request.createdBy, expiresAtMs },
      'pilot secret minted',
    );
    return { secret, pilotStamp: request.pilotStamp, vo: request.vo, site: request.site, expiresAtMs };
  }

  /** Exchanges a secret or a refresh token for a new pilot token and refresh token. */
  async exchange(request: ExchangeRequest, meta: { remoteAddress: string }): Promise<PilotTokenGrant> {
    const kind: PilotCredentialKind = 'secret' in request ? 'secret' : 'refresh';
    const presented = 'secret' in request ? request.secret : request.refreshToken;
    const log = this.#logger.child({
      pilotStamp: request.pilotStamp,
      credential: kind,
      remoteAddress: meta.remoteAddress,
    });
    const expectedPrefix = kind === 'secret' ? SECRET_PREFIX : REFRESH_PREFIX;
    if (!presented.startsWith(expectedPrefix)) {
      log.warn('pilot credential refused: not a pilot credential of this kind');
      throw invalid(kind);
    }
    const nowMs = this.#clock.nowMs();
    const spent = await this.#store.spendPilotCredential(hashCredential(presented), kind, request.pilotStamp, nowMs);
    switch (spent.outcome) {
      case 'unknown':
        log.warn('pilot credential refused: unknown');
        throw invalid(kind);
      case 'expired':
        log.warn({ expiresAtMs: spent.credential.expiresAtMs }, 'pilot credential refused: expired');
        throw invalid(kind);
      case 'wrong-stamp':
        // Someone holds the credential but claims another pilot: refuse, and do not spend it.
        log.warn(
          { boundTo: spent.credential.pilotStamp },
          'pilot credential refused: presented for another pilot stamp',
        );
        throw invalid(kind);
      case 'already-spent': {
        const revoked = await this.#store.revokePilotFamily(
          spent.credential.family,
          nowMs,
          `reuse of a spent pilot ${kind}`,
        );
        log.error(
          { family: spent.credential.family, spentAtMs: spent.credential.spentAtMs, revokedTokens: revoked.length },
          'REUSE of a spent pilot credential: refused, and every credential of this pilot revoked',
        );
        throw new PilothouseError(
          'PILOT_SECRET_SPENT',
          `this pilot ${kind === 'secret' ? 'secret' : 'refresh token'} was already used`,
        );
      }
      case 'spent':
        break;
    }
    const grant = await this.#grant(spent.credential, nowMs);
    log.info({ vo: grant.vo, site: grant.site, expiresAtMs: grant.expiresAtMs }, 'pilot token issued');
    return grant;
  }

  async #grant(from: PilotCredential, nowMs: number): Promise<PilotTokenGrant> {
    // The family's deadline starts at the exchange of the secret, and never moves after that.
    const familyExpiresAtMs =
      from.kind === 'secret' ? nowMs + this.#limits.maxPilotLifetimeSec * 1000 : from.familyExpiresAtMs;
    if (familyExpiresAtMs <= nowMs) throw invalid(from.kind);
    const ttlSec = Math.max(
      1,
      Math.min(this.#limits.accessTokenTtlSec, Math.floor((familyExpiresAtMs - nowMs) / 1000)),
    );
    const access = await this.#tokens.issueWithId({
      kind: 'pilot',
      subject: from.pilotStamp,
      vo: from.vo,
      group: `${from.vo}_pilot`,
      properties: [],
      site: from.site,
      pilotStamp: from.pilotStamp,
      ttlSec,
    });
    const refreshToken = REFRESH_PREFIX + randomBytes(32).toString('base64url');
    const refreshExpiresAtMs = Math.min(nowMs + this.#limits.refreshTokenTtlSec * 1000, familyExpiresAtMs);
    await this.#store.addPilotCredential({
      hash: hashCredential(refreshToken),
      kind: 'refresh',
      vo: from.vo,
      site: from.site,
      pilotStamp: from.pilotStamp,
      family: from.family,
      createdAtMs: nowMs,
      expiresAtMs: refreshExpiresAtMs,
      familyExpiresAtMs,
      createdBy: 'exchange',
      accessTokenId: access.tokenId,
      accessExpiresAtMs: access.expiresAtMs,
    });
    return {
      pilotToken: access.token,
      expiresAtMs: access.expiresAtMs,
      refreshToken,
      refreshExpiresAtMs,
      pilotStamp: from.pilotStamp,
      vo: from.vo,
      site: from.site,
    };
  }
}

function invalid(kind: PilotCredentialKind): PilothouseError {
  return new PilothouseError(
    'PILOT_SECRET_INVALID',
    kind === 'secret'
      ? 'the pilot secret is unknown, expired, or not for this pilot stamp'
      : 'the pilot refresh token is unknown, expired, or not for this pilot stamp',
  );
}
