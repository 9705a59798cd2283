/**
 * Who is signed in, in this browser tab: the matcher's access and refresh tokens, kept in
 * sessionStorage (they end with the tab). Signing in is the authorization code flow with PKCE
 * against the matcher (client `pilothouse-web`), which sends the browser to the community's identity
 * provider; a pasted token (an administrator's, `pilothouse token issue`) works too, without renewal.
 */
const STORAGE_KEY = 'pilothouse.session';
const PENDING_KEY = 'pilothouse.signin';
export const WEB_CLIENT_ID = 'pilothouse-web';
const RENEW_AHEAD_MS = 60_000;

export interface Session {
  accessToken: string;
  accessExpiresAtMs: number | null;
  refreshToken: string | null;
}

interface PendingSignIn {
  state: string;
  verifier: string;
  returnTo: string;
}

function base64url(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const randomText = (): string => base64url(crypto.getRandomValues(new Uint8Array(32)));
const redirectUri = (): string => `${location.origin}/ui/callback`;

export function currentSession(): Session | null {
  const text = sessionStorage.getItem(STORAGE_KEY);
  return text ? (JSON.parse(text) as Session) : null;
}

function keep(session: Session | null): void {
  if (session) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(STORAGE_KEY);
}

/** Goes to the matcher's authorization endpoint (and from there to the identity provider). */
export async function signIn(scope: string, returnTo: string): Promise<void> {
  const verifier = randomText();
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const pending: PendingSignIn = { state: randomText(), verifier, returnTo };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: WEB_CLIENT_ID,
    redirect_uri: redirectUri(),
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: 'S256',
    state: pending.state,
  });
  if (scope.trim()) query.set('scope', scope.trim());
  location.assign(`/api/auth/authorize?${query}`);
}

interface TokenAnswer {
  access_token: string;
  expires_in: number;
  refresh_token: string;
}

async function tokenRequest(fields: Record<string, string>): Promise<TokenAnswer> {
  const response = await fetch('/api/auth/token', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: WEB_CLIENT_ID, ...fields }),
  });
  const body = (await response.json()) as TokenAnswer & { error?: string; error_description?: string };
  if (!response.ok) throw new Error(`${body.error_description ?? 'sign-in failed'} (${body.error ?? response.status})`);
  return body;
}

const fromAnswer = (answer: TokenAnswer): Session => ({
  accessToken: answer.access_token,
  accessExpiresAtMs: Date.now() + answer.expires_in * 1000,
  refreshToken: answer.refresh_token,
});

/** /ui/callback: the code for tokens (checked against the state we sent); answers where to go next. */
export async function finishSignIn(url: URL): Promise<string> {
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) ?? 'null') as PendingSignIn | null;
  sessionStorage.removeItem(PENDING_KEY);
  const error = url.searchParams.get('error');
  if (error) throw new Error(`${url.searchParams.get('error_description') ?? 'sign-in refused'} (${error})`);
  if (!pending || url.searchParams.get('state') !== pending.state) {
    throw new Error('this sign-in was not started here (state mismatch): sign in again');
  }
  const answer = await tokenRequest({
    grant_type: 'authorization_code',
    code: url.searchParams.get('code') ?? '',
    code_verifier: pending.verifier,
    redirect_uri: redirectUri(),
  });
  keep(fromAnswer(answer));
  return pending.returnTo;
}

export function adoptToken(token: string): void {
  keep({ accessToken: token.trim(), accessExpiresAtMs: null, refreshToken: null });
}

let renewing: Promise<Session | null> | null = null;

/** The session, renewed first when its access token is about to expire (one renewal at a time). */
export async function freshSession(): Promise<Session | null> {
  const session = currentSession();
  if (!session || session.refreshToken === null || session.accessExpiresAtMs === null) return session;
  if (session.accessExpiresAtMs - Date.now() > RENEW_AHEAD_MS) return session;
  renewing ??= tokenRequest({ grant_type: 'refresh_token', refresh_token: session.refreshToken })
    .then((answer) => {
      const renewed = fromAnswer(answer);
      keep(renewed);
      return renewed;
    })
    .catch(() => {
      keep(null);
      return null;
    })
    .finally(() => {
      renewing = null;
    });
  return renewing;
}

export async function signOut(): Promise<void> {
  const session = currentSession();
  keep(null);
  if (session?.refreshToken) {
    await fetch('/api/auth/token/revoke', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: session.refreshToken, client_id: WEB_CLIENT_ID }),
    }).catch(() => undefined);
  }
}
