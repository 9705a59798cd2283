/**
 * The matcher as a client of a community's identity provider, through openid-client (discovery,
 * authorization URL with PKCE and nonce, the code exchange with every check of the ID token, the
 * userinfo call): one per issuer that has a `login` block. Discovery happens on first use and is kept;
 * a failed one is tried again at the next sign-in. Network failures are IDP_UNAVAILABLE (retryable);
 * an answer that fails a check is a refused sign-in.
 */
import * as oidc from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';
import { PilothouseError } from '../../../shared/errors.ts';
import type { OidcIssuerConfig } from '../oidc.ts';

/** What one trip to the identity provider must carry back to finish (kept in the store meanwhile). */
export interface IdpTripChecks {
  state: string;
  nonce: string;
  codeVerifier: string;
  redirectUri: string;
}

export class IdpClient {
  readonly issuer: OidcIssuerConfig;
  #configuration: Promise<oidc.Configuration> | null = null;

  constructor(issuer: OidcIssuerConfig) {
    if (!issuer.login) throw new Error(`issuer ${issuer.issuer} has no login block`);
    this.issuer = issuer;
  }

  /** The URL to send the user's browser to; `checks` are what the callback will be held to. */
  async authorizationUrl(checks: IdpTripChecks): Promise<URL> {
    const configuration = await this.#discover();
    return oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: checks.redirectUri,
      scope: (this.issuer.login?.scopes ?? []).join(' '),
      state: checks.state,
      nonce: checks.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(checks.codeVerifier),
      code_challenge_method: 'S256',
    });
  }

  /**
   * Finishes the trip: the callback URL's code is exchanged (state, nonce, PKCE and the ID token
   * checked by openid-client) and the user's claims returned — the ID token's, completed by userinfo
   * when the groups claim is not in the ID token (many providers keep groups out of it).
   */
  async finish(callbackUrl: URL, checks: IdpTripChecks): Promise<Record<string, unknown>> {
    const configuration = await this.#discover();
    let tokens;
    try {
      tokens = await oidc.authorizationCodeGrant(configuration, callbackUrl, {
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        pkceCodeVerifier: checks.codeVerifier,
        idTokenExpected: true,
      });
    } catch (error) {
      throw refusedOrUnavailable(error, 'the identity provider did not confirm the sign-in');
    }
    const claims: Record<string, unknown> = { ...tokens.claims() };
    if (claims[this.issuer.groupsClaim] === undefined || claims[this.issuer.userClaim] === undefined) {
      try {
        Object.assign(claims, await oidc.fetchUserInfo(configuration, tokens.access_token, String(claims.sub)), {
          sub: claims.sub,
        });
      } catch (error) {
        throw refusedOrUnavailable(error, 'the identity provider did not tell who signed in');
      }
    }
    return claims;
  }

  #discover(): Promise<oidc.Configuration> {
    if (!this.#configuration) {
      this.#configuration = this.#discoverOnce().catch((error: unknown) => {
        this.#configuration = null;
        throw error;
      });
    }
    return this.#configuration;
  }

  async #discoverOnce(): Promise<oidc.Configuration> {
    const login = this.issuer.login;
    if (!login) throw new Error('unreachable: no login block');
    const server = new URL(this.issuer.issuer);
    const agent = this.issuer.caPem === null ? null : new Agent({ connect: { ca: this.issuer.caPem } });
    const fetchWithCa = agent
      ? (((url: string, init: RequestInit) =>
          undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as oidc.CustomFetch)
      : undefined;
    try {
      const configuration = await oidc.discovery(
        server,
        login.clientId,
        undefined,
        login.clientSecret === null ? oidc.None() : oidc.ClientSecretPost(login.clientSecret),
        {
          // A provider on plain http is for a laboratory; its issuer URL says so explicitly.
          ...(server.protocol === 'http:' && { execute: [oidc.allowInsecureRequests] }),
          ...(fetchWithCa && { [oidc.customFetch]: fetchWithCa }),
          timeout: 10,
        },
      );
      if (fetchWithCa) configuration[oidc.customFetch] = fetchWithCa;
      return configuration;
    } catch (error) {
      throw new PilothouseError(
        'IDP_UNAVAILABLE',
        `the identity provider ${this.issuer.issuer} could not be discovered: ${(error as Error).message}`,
        {},
        { cause: error },
      );
    }
  }
}

function refusedOrUnavailable(error: unknown, refusal: string): PilothouseError {
  // openid-client throws ResponseBodyError / AuthorizationResponseError for answers it refused,
  // and TypeError (fetch) when the provider could not be reached.
  if (error instanceof TypeError || (error as { code?: string }).code === 'OAUTH_TIMEOUT') {
    return new PilothouseError('IDP_UNAVAILABLE', 'the identity provider could not be reached', {}, { cause: error });
  }
  return new PilothouseError('LOGIN_REFUSED', `${refusal}: ${(error as Error).message}`, {}, { cause: error });
}
