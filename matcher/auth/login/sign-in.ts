/**
 * Signing users in: the matcher is the authorization server its clients talk to, and sends the user's
 * browser to the community's identity provider to prove who they are.
 *  - Device flow (RFC 8628, `pilothouse login`): the CLI asks for a device code; the user opens the
 *    verification URL, types the user code, signs in at the IdP; the CLI's poll then gets tokens.
 *  - Authorization code flow with PKCE (RFC 6749 §4.1 + RFC 7636, the web application): the browser
 *    comes to /api/auth/authorize, goes to the IdP, comes back with a code for the application.
 * Both trips to the IdP carry their own state, nonce and PKCE verifier, kept in the store under the
 * state's digest so that any replica can take the callback; each is taken once.
 */
import type { Logger } from '../../../shared/logger.ts';
import type { Clock } from '../../../shared/clock.ts';
import { PilothouseError, toPilothouseError } from '../../../shared/errors.ts';
import type { LoginIdentity, LoginStore } from '../../store/login-store.ts';
import { identityFromClaims } from '../oidc.ts';
import {
  AUTHORIZATION_CODE_PREFIX,
  DEVICE_CODE_PREFIX,
  newUserCode,
  normalizeUserCode,
  randomSecret,
} from './codes.ts';
import type { IdpClient } from './idp-client.ts';
import { hashCredential } from '../pilot-credentials.ts';
import type { LoginSettings } from './login-config.ts';
import { OAuthError } from './oauth-error.ts';
import { loginClient, parseLoginScope, type LoginScope } from './login-clients.ts';

export const CALLBACK_PATH = '/api/auth/callback';
export const DEVICE_VERIFICATION_PATH = '/api/auth/device';

export interface DeviceAuthorization {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  expires_in: number;
  interval: number;
}

export interface AuthorizeRequest {
  responseType: string | null;
  clientId: string | null;
  redirectUri: string | null;
  codeChallenge: string | null;
  codeChallengeMethod: string | null;
  state: string | null;
  scope: string | null;
}

/** Where a callback sends the browser: back to the application, or a page saying how it went. */
export type CallbackOutcome =
  { kind: 'redirect'; location: string } | { kind: 'device-done'; identity: LoginIdentity } | { kind: 'device-denied' };

interface TripData extends Record<string, unknown> {
  purpose: 'device' | 'web';
  issuer: string;
  group: string | null;
  nonce: string;
  codeVerifier: string;
  redirectUri: string;
  /** Device trips: the device grant to settle. */
  deviceHash?: string;
  /** Web trips: what the code will be bound to, and the application's own state. */
  clientRedirectUri?: string;
  codeChallenge?: string;
  clientState?: string | null;
  scope?: string;
}

export interface SignInDeps {
  store: LoginStore;
  /** The identity providers users sign in at, by VO. */
  idps: ReadonlyMap<string, IdpClient>;
  settings: LoginSettings;
  clock: Clock;
  logger: Logger;
}

export class SignIn {
  readonly #deps: SignInDeps;

  constructor(deps: SignInDeps) {
    this.#deps = deps;
  }

  get enabled(): boolean {
    return this.#deps.idps.size > 0;
  }

  /** The IdP of the VO the scope names, or the only one. */
  idpFor(scope: LoginScope): IdpClient {
    const { idps } = this.#deps;
    if (idps.size === 0) throw new OAuthError('invalid_request', 'user login is not configured on this matcher');
    if (scope.vo === null) {
      if (idps.size === 1) return [...idps.values()][0] as IdpClient;
      throw new OAuthError(
        'invalid_scope',
        `several VOs sign in here: say which with vo:NAME (${[...idps.keys()].join(', ')})`,
      );
    }
    const idp = idps.get(scope.vo);
    if (!idp) throw new OAuthError('invalid_scope', `VO ${scope.vo} has no sign-in on this matcher`);
    return idp;
  }

  async startDevice(clientId: string | null, rawScope: string | null, publicUrl: string): Promise<DeviceAuthorization> {
    const client = loginClient(clientId, 'urn:ietf:params:oauth:grant-type:device_code');
    const scope = parseLoginScope(rawScope);
    this.idpFor(scope);
    const { settings, clock } = this.#deps;
    const deviceCode = randomSecret(DEVICE_CODE_PREFIX);
    const userCode = newUserCode();
    const nowMs = clock.nowMs();
    await this.#deps.store.addGrant({
      hash: hashCredential(deviceCode),
      kind: 'device',
      clientId: client.id,
      userCode: userCode.stored,
      data: { scope: scope.text, vo: scope.vo, group: scope.group },
      intervalSec: settings.pollIntervalSec,
      createdAtMs: nowMs,
      expiresAtMs: nowMs + settings.deviceCodeTtlSec * 1000,
    });
    this.#deps.logger.info({ clientId, vo: scope.vo, group: scope.group }, 'device authorization started');
    const verification = `${publicUrl}${DEVICE_VERIFICATION_PATH}`;
    return {
      device_code: deviceCode,
      user_code: userCode.shown,
      verification_uri: verification,
      verification_uri_complete: `${verification}?user_code=${encodeURIComponent(userCode.shown)}`,
      expires_in: settings.deviceCodeTtlSec,
      interval: settings.pollIntervalSec,
    };
  }

  /** The user typed a user code: the IdP's sign-in page to send them to. */
  async verifyUserCode(typed: string, publicUrl: string): Promise<URL> {
    const grant = await this.#deps.store.pendingDeviceGrant(normalizeUserCode(typed), this.#deps.clock.nowMs());
    if (!grant) {
      throw new PilothouseError(
        'LOGIN_REFUSED',
        'this code is unknown, expired or already used: run pilothouse login again',
        {
          field: 'user_code',
        },
      );
    }
    const scope = parseLoginScope(String(grant.data.scope ?? ''));
    return this.#startTrip(this.idpFor(scope), publicUrl, grant.clientId, {
      purpose: 'device',
      group: scope.group,
      deviceHash: grant.hash,
    });
  }

  /** GET /api/auth/authorize: checked, then the IdP's sign-in page (errors before the redirect URI is trusted are thrown). */
  async authorize(request: AuthorizeRequest, publicUrl: string): Promise<URL> {
    const client = loginClient(request.clientId, 'authorization_code');
    const redirectUri = client.checkRedirectUri(request.redirectUri, publicUrl);
    // From here on, errors go back to the application's redirect URI (RFC 6749 §4.1.2.1).
    const back = (error: OAuthError): URL => {
      const url = new URL(redirectUri);
      url.searchParams.set('error', error.error);
      url.searchParams.set('error_description', error.message);
      if (request.state !== null) url.searchParams.set('state', request.state);
      return url;
    };
    try {
      if (request.responseType !== 'code') {
        throw new OAuthError('unsupported_response_type', 'response_type must be code');
      }
      if (request.codeChallenge === null || !/^[A-Za-z0-9_-]{43}$/.test(request.codeChallenge)) {
        throw new OAuthError('invalid_request', 'code_challenge is required (PKCE, RFC 7636): 43 base64url characters');
      }
      if (request.codeChallengeMethod !== 'S256') {
        throw new OAuthError('invalid_request', 'code_challenge_method must be S256');
      }
      const scope = parseLoginScope(request.scope);
      return await this.#startTrip(this.idpFor(scope), publicUrl, client.id, {
        purpose: 'web',
        group: scope.group,
        clientRedirectUri: redirectUri,
        codeChallenge: request.codeChallenge,
        clientState: request.state,
        scope: scope.text,
      });
    } catch (error) {
      if (error instanceof OAuthError) return back(error);
      throw error;
    }
  }

  /** A trip to the IdP for `clientId`'s sign-in; the callback finds it by its state. */
  async #startTrip(idp: IdpClient, publicUrl: string, clientId: string, trip: Partial<TripData>): Promise<URL> {
    const { settings, clock, store } = this.#deps;
    const state = randomSecret();
    const data: TripData = {
      ...trip,
      purpose: trip.purpose ?? 'web',
      issuer: idp.issuer.issuer,
      group: trip.group ?? null,
      nonce: randomSecret(),
      codeVerifier: randomSecret(),
      redirectUri: `${publicUrl}${CALLBACK_PATH}`,
    };
    const nowMs = clock.nowMs();
    await store.addGrant({
      hash: hashCredential(state),
      kind: 'transaction',
      clientId,
      userCode: null,
      data,
      intervalSec: 0,
      createdAtMs: nowMs,
      expiresAtMs: nowMs + settings.signInTtlSec * 1000,
    });
    return idp.authorizationUrl({
      state,
      nonce: data.nonce,
      codeVerifier: data.codeVerifier,
      redirectUri: data.redirectUri,
    });
  }

  /** GET /api/auth/callback: the IdP sent the browser back. */
  async callback(callbackUrl: URL): Promise<CallbackOutcome> {
    const { store, clock, logger } = this.#deps;
    const state = callbackUrl.searchParams.get('state');
    const trip = state === null ? null : await store.takeGrant(hashCredential(state), 'transaction', clock.nowMs());
    if (!trip) {
      logger.warn('sign-in refused: unknown, expired or replayed state');
      throw new PilothouseError(
        'LOGIN_REFUSED',
        'this sign-in is unknown, expired or was already finished: start again',
        {
          field: 'state',
        },
      );
    }
    const data = trip.data as TripData;
    const idp = [...this.#deps.idps.values()].find((candidate) => candidate.issuer.issuer === data.issuer);
    if (!idp)
      throw new PilothouseError('LOGIN_REFUSED', 'the identity provider of this sign-in is no longer configured');
    const idpError = callbackUrl.searchParams.get('error');
    if (idpError !== null) {
      logger.info({ idpError, purpose: data.purpose }, 'sign-in declined at the identity provider');
      if (data.purpose === 'device') {
        await store.settleDeviceGrant(String(data.deviceHash), null, clock.nowMs());
        return { kind: 'device-denied' };
      }
      return {
        kind: 'redirect',
        location: this.#backToClient(data, {
          error: 'access_denied',
          error_description: `the identity provider said ${idpError}`,
        }),
      };
    }
    let identity: LoginIdentity;
    try {
      const claims = await idp.finish(callbackUrl, {
        state: state as string,
        nonce: data.nonce,
        codeVerifier: data.codeVerifier,
        redirectUri: data.redirectUri,
      });
      identity = identityFromClaims(idp.issuer, claims, data.group ?? undefined);
    } catch (error) {
      const refusal = toPilothouseError(error);
      // A refused device sign-in ends the CLI's wait at once (access_denied) instead of at expiry;
      // an unreachable IdP leaves it pending so that the user can open the link again.
      if (data.purpose === 'device' && !refusal.retryable) {
        await store.settleDeviceGrant(String(data.deviceHash), null, clock.nowMs());
      }
      logger.warn({ code: refusal.code, reason: refusal.message, purpose: data.purpose }, 'sign-in refused');
      if (refusal.retryable) throw refusal;
      throw new PilothouseError('LOGIN_REFUSED', refusal.message, { field: 'group' }, { cause: error });
    }
    const log = logger.child({ user: identity.subject, vo: identity.vo, group: identity.group });
    if (data.purpose === 'device') {
      const settled = await store.settleDeviceGrant(String(data.deviceHash), identity, clock.nowMs());
      if (!settled)
        throw new PilothouseError(
          'LOGIN_REFUSED',
          'the code expired while you were signing in: run pilothouse login again',
        );
      log.info('device sign-in confirmed');
      return { kind: 'device-done', identity };
    }
    const code = randomSecret(AUTHORIZATION_CODE_PREFIX);
    const nowMs = clock.nowMs();
    await store.addGrant({
      hash: hashCredential(code),
      kind: 'code',
      clientId: trip.clientId,
      userCode: null,
      identity,
      data: { redirectUri: data.clientRedirectUri, codeChallenge: data.codeChallenge, scope: data.scope },
      intervalSec: 0,
      createdAtMs: nowMs,
      expiresAtMs: nowMs + this.#deps.settings.signInTtlSec * 1000,
    });
    log.info({ clientId: trip.clientId }, 'web sign-in confirmed: code issued');
    return { kind: 'redirect', location: this.#backToClient(data, { code }) };
  }

  #backToClient(data: TripData, parameters: Record<string, string>): string {
    const url = new URL(String(data.clientRedirectUri));
    for (const [name, value] of Object.entries(parameters)) url.searchParams.set(name, value);
    if (data.clientState !== null && data.clientState !== undefined) url.searchParams.set('state', data.clientState);
    return url.toString();
  }
}
