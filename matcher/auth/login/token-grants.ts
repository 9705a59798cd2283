/**
 * The token endpoint of user login (RFC 6749 §3.2) and its revocation (RFC 7009). Three grants:
 *  - the device code (RFC 8628 §3.4), answered `authorization_pending`, `slow_down`, `access_denied`,
 *    `expired_token` until the user has signed in, then tokens exactly once;
 *  - the authorization code, bound to its client, redirect URI and PKCE challenge, used once;
 *  - the refresh token, rotated at each use. Presenting a spent one means it leaked: the whole family
 *    (every refresh token of that sign-in, and the access tokens issued with them) is revoked
 *    (RFC 6749 §10.4, RFC 9700 §4.14.2), as for pilot credentials.
 * The matcher issues its own access tokens (user tokens, short-lived) carrying the VO, group and
 * properties the identity provider's claims mapped to.
 */
import type { Logger } from '../../../shared/logger.ts';
import type { Clock } from '../../../shared/clock.ts';
import type { CredentialStore } from '../../store/credential-store.ts';
import type { LoginIdentity, LoginStore } from '../../store/login-store.ts';
import type { TokenService } from '../tokens.ts';
import { hashCredential } from '../pilot-credentials.ts';
import { pkceMatches, randomSecret, REFRESH_TOKEN_PREFIX } from './codes.ts';
import type { LoginSettings } from './login-config.ts';
import { DEVICE_GRANT_TYPE, loginClient } from './login-clients.ts';
import { OAuthError } from './oauth-error.ts';

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  /** The refresh token's own end (not in RFC 6749; clients use it to know when to sign in again). */
  refresh_token_expires_in: number;
  scope: string;
}

export interface TokenGrantsDeps {
  store: LoginStore;
  credentials: Pick<CredentialStore, 'revokeToken'>;
  tokens: TokenService;
  settings: LoginSettings;
  clock: Clock;
  logger: Logger;
}

type Form = URLSearchParams;

export class TokenGrants {
  readonly #deps: TokenGrantsDeps;

  constructor(deps: TokenGrantsDeps) {
    this.#deps = deps;
  }

  async token(form: Form): Promise<TokenResponse> {
    const grantType = form.get('grant_type');
    switch (grantType) {
      case DEVICE_GRANT_TYPE:
        return this.#deviceCode(form);
      case 'authorization_code':
        return this.#authorizationCode(form);
      case 'refresh_token':
        return this.#refresh(form);
      case null:
        throw new OAuthError('invalid_request', 'grant_type is required');
      default:
        throw new OAuthError('unsupported_grant_type', `grant_type ${grantType} is not supported`);
    }
  }

  async #deviceCode(form: Form): Promise<TokenResponse> {
    const client = loginClient(form.get('client_id'), DEVICE_GRANT_TYPE);
    const deviceCode = required(form, 'device_code');
    const poll = await this.#deps.store.pollDeviceGrant(
      hashCredential(deviceCode),
      client.id,
      this.#deps.clock.nowMs(),
    );
    switch (poll.outcome) {
      case 'unknown':
        throw new OAuthError('invalid_grant', 'the device code is unknown or was already used');
      case 'expired':
        throw new OAuthError('expired_token', 'the device code expired before the user signed in: start again');
      case 'slow-down':
        throw new OAuthError('slow_down', `polled too often: wait ${poll.intervalSec} s between polls`);
      case 'pending':
        throw new OAuthError('authorization_pending', 'the user has not signed in yet');
      case 'denied':
        throw new OAuthError('access_denied', 'the sign-in was declined, or refused (see the browser page)');
      case 'approved':
        return this.#issue(poll.grant.identity as LoginIdentity, client.id, String(poll.grant.data.scope ?? ''), null);
    }
  }

  async #authorizationCode(form: Form): Promise<TokenResponse> {
    const client = loginClient(form.get('client_id'), 'authorization_code');
    const code = required(form, 'code');
    const verifier = required(form, 'code_verifier');
    const redirectUri = required(form, 'redirect_uri');
    // Taken (spent) before it is checked: a code presented with a wrong verifier is gone, as a guessed one should be.
    const grant = await this.#deps.store.takeGrant(hashCredential(code), 'code', this.#deps.clock.nowMs());
    if (!grant || grant.identity === null) {
      throw new OAuthError('invalid_grant', 'the authorization code is unknown, expired or already used');
    }
    if (grant.clientId !== client.id || grant.data.redirectUri !== redirectUri) {
      throw new OAuthError('invalid_grant', 'the authorization code was issued to another client or redirect_uri');
    }
    if (!pkceMatches(verifier, String(grant.data.codeChallenge))) {
      this.#deps.logger.warn(
        { clientId: client.id, user: grant.identity.subject },
        'authorization code refused: wrong PKCE verifier',
      );
      throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge');
    }
    return this.#issue(grant.identity, client.id, String(grant.data.scope ?? ''), null);
  }

  async #refresh(form: Form): Promise<TokenResponse> {
    const client = loginClient(form.get('client_id'), 'refresh_token');
    const presented = required(form, 'refresh_token');
    const nowMs = this.#deps.clock.nowMs();
    const spent = await this.#deps.store.spendRefreshToken(hashCredential(presented), nowMs);
    switch (spent.outcome) {
      case 'unknown':
      case 'expired':
        throw new OAuthError('invalid_grant', 'the refresh token is unknown or expired: sign in again');
      case 'already-spent': {
        const revoked = await this.#revokeFamily(spent.token.family, 'reuse of a spent refresh token');
        this.#deps.logger.error(
          { user: spent.token.identity.subject, family: spent.token.family, revokedTokens: revoked },
          'REUSE of a spent user refresh token: refused, and every token of this sign-in revoked',
        );
        throw new OAuthError(
          'invalid_grant',
          'this refresh token was already used: every token of this sign-in is revoked',
        );
      }
      case 'spent':
        break;
    }
    if (spent.token.clientId !== client.id) {
      throw new OAuthError('invalid_grant', 'the refresh token was issued to another client');
    }
    return this.#issue(spent.token.identity, client.id, spent.token.scope, spent.token);
  }

  /** RFC 7009: a refresh token presented here revokes its sign-in; anything else is answered the same. */
  async revoke(form: Form): Promise<void> {
    const token = form.get('token');
    if (token === null || !token.startsWith(REFRESH_TOKEN_PREFIX)) return;
    const spent = await this.#deps.store.spendRefreshToken(hashCredential(token), this.#deps.clock.nowMs());
    if (spent.outcome === 'unknown') return;
    const revoked = await this.#revokeFamily(spent.token.family, 'signed out');
    this.#deps.logger.info({ user: spent.token.identity.subject, revokedTokens: revoked }, 'user signed out');
  }

  async #revokeFamily(family: string, reason: string): Promise<number> {
    const atMs = this.#deps.clock.nowMs();
    const alive = await this.#deps.store.revokeRefreshFamily(family, atMs);
    for (const access of alive) {
      await this.#deps.credentials.revokeToken({ ...access, atMs, reason, revokedBy: 'matcher' });
    }
    return alive.length;
  }

  async #issue(
    identity: LoginIdentity,
    clientId: string,
    scope: string,
    rotatedFrom: { family: string; familyExpiresAtMs: number } | null,
  ): Promise<TokenResponse> {
    const { settings, clock, tokens, store } = this.#deps;
    const nowMs = clock.nowMs();
    const family = rotatedFrom?.family ?? randomSecret();
    const familyExpiresAtMs = rotatedFrom?.familyExpiresAtMs ?? nowMs + settings.maxSessionSec * 1000;
    if (familyExpiresAtMs <= nowMs) throw new OAuthError('invalid_grant', 'this sign-in has ended: sign in again');
    const remainingSec = Math.floor((familyExpiresAtMs - nowMs) / 1000);
    const access = await tokens.issueWithId({
      kind: 'user',
      subject: identity.subject,
      vo: identity.vo,
      group: identity.group,
      properties: identity.properties,
      ttlSec: Math.max(1, Math.min(settings.accessTokenTtlSec, remainingSec)),
    });
    const refreshToken = randomSecret(REFRESH_TOKEN_PREFIX);
    const refreshExpiresAtMs = Math.min(nowMs + settings.refreshTokenTtlSec * 1000, familyExpiresAtMs);
    await store.addRefreshToken({
      hash: hashCredential(refreshToken),
      family,
      clientId,
      identity,
      scope,
      createdAtMs: nowMs,
      expiresAtMs: refreshExpiresAtMs,
      familyExpiresAtMs,
      accessTokenId: access.tokenId,
      accessExpiresAtMs: access.expiresAtMs,
    });
    this.#deps.logger.info(
      { user: identity.subject, vo: identity.vo, group: identity.group, clientId, rotated: rotatedFrom !== null },
      'user tokens issued',
    );
    return {
      access_token: access.token,
      token_type: 'Bearer',
      expires_in: Math.round((access.expiresAtMs - nowMs) / 1000),
      refresh_token: refreshToken,
      refresh_token_expires_in: Math.round((refreshExpiresAtMs - nowMs) / 1000),
      scope,
    };
  }
}

function required(form: Form, name: string): string {
  const value = form.get(name);
  if (value === null || value === '') throw new OAuthError('invalid_request', `${name} is required`);
  return value;
}
