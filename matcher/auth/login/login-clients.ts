/**
 * The OAuth clients of a matcher and the scopes they may ask for. Both clients are public (they hold
 * no secret) and built in:
 *  - `pilothouse-cli`: the device flow and refresh tokens (`pilothouse login`);
 *  - `pilothouse-web`: the authorization code flow with PKCE and refresh tokens, redirected only to
 *    the matcher's own origin (the web application it serves).
 * A scope names the VO and the group to act as (`vo:lhcb group:lhcb_prod`), as DiracX's do; standard
 * OpenID scopes are accepted and ignored.
 */
import { OAuthError } from './oauth-error.ts';

export const CLI_CLIENT_ID = 'pilothouse-cli';
export const WEB_CLIENT_ID = 'pilothouse-web';
export const DEVICE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';

type GrantType = typeof DEVICE_GRANT_TYPE | 'authorization_code' | 'refresh_token';

const GRANTS: Record<string, readonly GrantType[]> = {
  [CLI_CLIENT_ID]: [DEVICE_GRANT_TYPE, 'refresh_token'],
  [WEB_CLIENT_ID]: ['authorization_code', 'refresh_token'],
};

export interface LoginClient {
  id: string;
  /** The redirect URI if this client may use it (same origin as the matcher), else invalid_request. */
  checkRedirectUri(uri: string | null, publicUrl: string): string;
}

export function loginClient(clientId: string | null, grantType: GrantType): LoginClient {
  if (clientId === null || clientId === '') throw new OAuthError('invalid_request', 'client_id is required');
  const grants = GRANTS[clientId];
  if (!grants) throw new OAuthError('invalid_client', `unknown client_id ${clientId}`);
  if (!grants.includes(grantType)) {
    throw new OAuthError('unauthorized_client', `client ${clientId} may not use ${grantType}`);
  }
  return {
    id: clientId,
    checkRedirectUri(uri, publicUrl) {
      let parsed: URL;
      try {
        parsed = new URL(uri ?? '');
      } catch {
        throw new OAuthError('invalid_request', 'redirect_uri must be an absolute URL');
      }
      if (parsed.origin !== new URL(publicUrl).origin || parsed.hash !== '') {
        throw new OAuthError(
          'invalid_request',
          `redirect_uri must be on this matcher (${publicUrl}), without a fragment`,
        );
      }
      return parsed.toString();
    },
  };
}

export interface LoginScope {
  vo: string | null;
  group: string | null;
  /** The scope as granted (vo and group only), e.g. "vo:lhcb group:lhcb_prod". */
  text: string;
}

const IGNORED_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$/;

export function parseLoginScope(raw: string | null): LoginScope {
  let vo: string | null = null;
  let group: string | null = null;
  for (const item of (raw ?? '').split(/\s+/).filter(Boolean)) {
    if (IGNORED_SCOPES.has(item)) continue;
    const match = /^(vo|group):(.+)$/.exec(item);
    if (!match || !NAME.test(match[2] as string)) {
      throw new OAuthError('invalid_scope', `unknown scope ${item}: use vo:NAME and group:NAME`);
    }
    if (match[1] === 'vo') {
      if (vo !== null) throw new OAuthError('invalid_scope', 'one vo: scope only');
      vo = match[2] as string;
    } else {
      if (group !== null) throw new OAuthError('invalid_scope', 'one group: scope only');
      group = match[2] as string;
    }
  }
  const text = [vo && `vo:${vo}`, group && `group:${group}`].filter(Boolean).join(' ');
  return { vo, group, text };
}
