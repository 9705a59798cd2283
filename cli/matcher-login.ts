/**
 * The CLI as an OAuth client of its matcher (client `pilothouse-cli`), through openid-client: the
 * device flow of `pilothouse login` (polling at the interval the matcher asks, slowing down when told),
 * refreshing saved tokens before they expire, and revoking them at `pilothouse logout`. A matcher on
 * plain http is allowed (a laboratory); the tokens then travel in clear, as every other call does. An
 * https matcher under a private CA is verified against `caPem` (--ca-file), as every other call is.
 */
import * as oidc from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';
import { PilothouseError } from '../shared/errors.ts';
import { matcherKey, readSavedLogin, saveLogin, withCredentialsLock, type SavedLogin } from './saved-logins.ts';

export const CLI_CLIENT_ID = 'pilothouse-cli';
/** Saved access tokens are refreshed when they have less than this left. */
const REFRESH_AHEAD_MS = 60_000;

/** How the matcher is reached: `caPem` verifies an https matcher under a private CA. */
export interface MatcherTls {
  caPem?: string | undefined;
}

/** Plain http allowed (a laboratory), and requests through an agent that trusts `caPem` when given. */
function reachMatcher(configuration: oidc.Configuration, url: URL, tls: MatcherTls): void {
  if (url.protocol === 'http:') oidc.allowInsecureRequests(configuration);
  if (tls.caPem !== undefined) configuration[oidc.customFetch] = fetchTrusting(tls.caPem);
}

function fetchTrusting(caPem: string): oidc.CustomFetch {
  const dispatcher = new Agent({ connect: { ca: caPem } });
  return (url, options) =>
    undiciFetch(url, { ...options, dispatcher } as Parameters<typeof undiciFetch>[1]) as unknown as Promise<Response>;
}

function oauthFailure(error: unknown, what: string): PilothouseError {
  const oauth = error as { error?: string; error_description?: string; code?: string; cause?: unknown };
  if (error instanceof TypeError || oauth.code === 'OAUTH_TIMEOUT') {
    // fetch says only "fetch failed"; why (refused, a certificate nobody vouches for) is in its cause.
    const why = (oauth.cause as { message?: string } | undefined)?.message;
    return new PilothouseError(
      'MATCHER_UNREACHABLE',
      `${what}: the matcher could not be reached${why ? ` (${why})` : ''}`,
      {},
      { cause: error },
    );
  }
  const reason = oauth.error
    ? `${oauth.error}${oauth.error_description ? `: ${oauth.error_description}` : ''}`
    : (error as Error).message;
  return new PilothouseError('LOGIN_REFUSED', `${what}: ${reason}`, {}, { cause: error });
}

async function discover(matcherUrl: string, tls: MatcherTls): Promise<oidc.Configuration> {
  const server = new URL(matcherKey(matcherUrl));
  try {
    return await oidc.discovery(server, CLI_CLIENT_ID, undefined, oidc.None(), {
      algorithm: 'oauth2',
      // openid-client looks for allowInsecureRequests itself in this list to allow the discovery request.
      execute: [
        ...(server.protocol === 'http:' ? [oidc.allowInsecureRequests] : []),
        (configuration) => reachMatcher(configuration, server, tls),
      ],
      ...(tls.caPem !== undefined && { [oidc.customFetch]: fetchTrusting(tls.caPem) }),
    });
  } catch (error) {
    throw oauthFailure(error, 'the matcher does not offer sign-in');
  }
}

function fromStored(login: SavedLogin, tls: MatcherTls): oidc.Configuration {
  const configuration = new oidc.Configuration(
    { issuer: login.issuer, token_endpoint: login.tokenEndpoint, revocation_endpoint: login.revocationEndpoint },
    CLI_CLIENT_ID,
    undefined,
    oidc.None(),
  );
  reachMatcher(configuration, new URL(login.tokenEndpoint), tls);
  return configuration;
}

interface WhoAmI {
  user: string;
  vo: string;
  group: string;
}

async function toSaved(
  configuration: oidc.Configuration,
  tokens: oidc.TokenEndpointResponse,
  whoAmI: (accessToken: string) => Promise<WhoAmI>,
): Promise<SavedLogin> {
  const metadata = configuration.serverMetadata();
  const nowMs = Date.now();
  const refreshExpiresIn = Number((tokens as { refresh_token_expires_in?: number }).refresh_token_expires_in ?? 0);
  const who = await whoAmI(tokens.access_token);
  return {
    ...who,
    accessToken: tokens.access_token,
    accessExpiresAtMs: nowMs + (tokens.expires_in ?? 0) * 1000,
    refreshToken: tokens.refresh_token ?? '',
    refreshExpiresAtMs: nowMs + refreshExpiresIn * 1000,
    tokenEndpoint: String(metadata.token_endpoint),
    revocationEndpoint: String(metadata.revocation_endpoint),
    issuer: metadata.issuer,
  };
}

export interface DeviceLoginOptions extends MatcherTls {
  matcherUrl: string;
  vo?: string | undefined;
  group?: string | undefined;
  /** Told where the user must go and what to type. */
  onCode(verification: { url: string; urlWithCode: string; userCode: string; expiresInSec: number }): void;
  whoAmI(accessToken: string): Promise<WhoAmI>;
  signal?: AbortSignal;
}

/** `pilothouse login`: the device flow to its end, the tokens saved; answers who signed in. */
export async function deviceLogin(options: DeviceLoginOptions): Promise<SavedLogin> {
  const configuration = await discover(options.matcherUrl, options);
  const scope = [options.vo && `vo:${options.vo}`, options.group && `group:${options.group}`].filter(Boolean).join(' ');
  let started: oidc.DeviceAuthorizationResponse;
  try {
    started = await oidc.initiateDeviceAuthorization(configuration, scope ? { scope } : {});
  } catch (error) {
    throw oauthFailure(error, 'sign-in could not start');
  }
  options.onCode({
    url: started.verification_uri,
    urlWithCode: started.verification_uri_complete ?? started.verification_uri,
    userCode: started.user_code,
    expiresInSec: started.expires_in,
  });
  let tokens: oidc.TokenEndpointResponse;
  try {
    tokens = await oidc.pollDeviceAuthorizationGrant(configuration, started, undefined, {
      ...(options.signal && { signal: options.signal }),
    });
  } catch (error) {
    throw oauthFailure(error, 'sign-in did not complete');
  }
  const saved = await toSaved(configuration, tokens, options.whoAmI);
  await withCredentialsLock(() => saveLogin(options.matcherUrl, saved));
  return saved;
}

/**
 * The access token of the saved sign-in for this matcher, refreshed first when it is about to expire
 * (under the credentials lock, re-reading the file: another command may have just refreshed it).
 * Null when there is no saved sign-in.
 */
export async function savedAccessToken(matcherUrl: string, tls: MatcherTls = {}): Promise<string | null> {
  const fresh = (login: SavedLogin | null) => login !== null && login.accessExpiresAtMs - Date.now() > REFRESH_AHEAD_MS;
  const first = await readSavedLogin(matcherUrl);
  if (first === null) return null;
  if (fresh(first)) return first.accessToken;
  return withCredentialsLock(async () => {
    const login = await readSavedLogin(matcherUrl);
    if (login === null) return null;
    if (fresh(login)) return login.accessToken;
    if (login.refreshExpiresAtMs <= Date.now()) {
      throw new PilothouseError('TOKEN_EXPIRED', 'your sign-in has ended: run pilothouse login again');
    }
    const configuration = fromStored(login, tls);
    let tokens: oidc.TokenEndpointResponse;
    try {
      tokens = await oidc.refreshTokenGrant(configuration, login.refreshToken);
    } catch (error) {
      const failure = oauthFailure(error, 'your sign-in could not be renewed');
      if (failure.code === 'LOGIN_REFUSED') {
        await saveLogin(matcherUrl, null);
        throw new PilothouseError('TOKEN_EXPIRED', `${failure.message}; run pilothouse login again`);
      }
      throw failure;
    }
    const renewed = await toSaved(configuration, tokens, async () => ({
      user: login.user,
      vo: login.vo,
      group: login.group,
    }));
    await saveLogin(matcherUrl, renewed);
    return renewed.accessToken;
  });
}

/** `pilothouse logout`: the sign-in revoked at the matcher (best effort) and forgotten here. */
export async function logout(
  matcherUrl: string,
  tls: MatcherTls = {},
): Promise<{ signedOut: boolean; revoked: boolean }> {
  return withCredentialsLock(async () => {
    const login = await readSavedLogin(matcherUrl);
    if (login === null) return { signedOut: false, revoked: false };
    let revoked = true;
    try {
      await oidc.tokenRevocation(fromStored(login, tls), login.refreshToken, { token_type_hint: 'refresh_token' });
    } catch {
      revoked = false;
    }
    await saveLogin(matcherUrl, null);
    return { signedOut: true, revoked };
  });
}
