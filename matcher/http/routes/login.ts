/**
 * User login over HTTP: the authorization server's metadata (RFC 8414), the device authorization
 * endpoint and its verification page (RFC 8628), the authorization endpoint (RFC 6749 §4.1 with PKCE),
 * the identity provider's callback, the token endpoint and token revocation (RFC 7009). All public:
 * what they accept is checked by the login modules. OAuth endpoints answer RFC errors
 * (`{error, error_description}`); pages a person sees in a browser answer small HTML pages.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { Readable } from 'node:stream';
import { PilothouseError, toPilothouseError } from '../../../shared/errors.ts';
import type { Logger } from 'pino';
import { CALLBACK_PATH, DEVICE_VERIFICATION_PATH, type SignIn } from '../../auth/login/sign-in.ts';
import type { TokenGrants } from '../../auth/login/token-grants.ts';
import { OAuthError } from '../../auth/login/oauth-error.ts';
import { CLI_CLIENT_ID, DEVICE_GRANT_TYPE, WEB_CLIENT_ID } from '../../auth/login/login-clients.ts';
import { readTextBody, type Reply, type Route } from '../router.ts';
import type { RouteDeps } from './context.ts';

const MAX_FORM_BYTES = 16 * 1024;
const FORM_CONTENT = /^application\/x-www-form-urlencoded\b/i;
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

export interface LoginDeps {
  signIn: SignIn;
  tokenGrants: TokenGrants;
  /** The matcher's URL as users reach it (`--public-url`); null: taken from each request's Host. */
  publicUrl: string | null;
}

export function publicUrlOf(req: IncomingMessage, configured: string | null): string {
  if (configured !== null) return configured;
  const scheme = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
  return `${scheme}://${req.headers.host ?? 'localhost'}`;
}

/** An x-www-form-urlencoded body; a parameter given twice is invalid_request (RFC 6749 §3.1). */
async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  if (!FORM_CONTENT.test(req.headers['content-type'] ?? '')) {
    throw new OAuthError('invalid_request', 'the body must be application/x-www-form-urlencoded');
  }
  const form = new URLSearchParams(await readTextBody(req, MAX_FORM_BYTES));
  const seen = new Set<string>();
  for (const name of form.keys()) {
    if (seen.has(name)) throw new OAuthError('invalid_request', `${name} is given more than once`);
    seen.add(name);
  }
  return form;
}

function oauthAnswer(error: unknown): Reply {
  if (error instanceof OAuthError) return { status: error.status, json: error.toJSON(), headers: NO_STORE };
  const coded = toPilothouseError(error);
  if (coded.retryable) {
    return {
      status: 503,
      json: new OAuthError('temporarily_unavailable', coded.message).toJSON(),
      headers: NO_STORE,
    };
  }
  throw error;
}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(status: number, title: string, body: string): Reply {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${escapeHtml(title)} · Pilothouse</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#111}
input,button{font:inherit;padding:.4rem .6rem}label{display:block;margin-bottom:.3rem}</style></head>
<body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`;
  return {
    status,
    stream: Readable.from([html]),
    headers: {
      'content-type': 'text/html; charset=utf-8',
      ...NO_STORE,
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    },
  };
}

function redirect(location: URL | string): Reply {
  return { status: 302, stream: Readable.from([]), headers: { location: String(location), ...NO_STORE } };
}

function refusalPage(error: unknown): Reply {
  const coded = toPilothouseError(error);
  if (coded.httpStatus >= 500 && !coded.retryable) throw error;
  return page(
    coded.httpStatus,
    'Sign-in failed',
    `<p>${escapeHtml(coded.message)}</p><p><small>${coded.code}</small></p>`,
  );
}

/** Failures that are someone guessing (a code, a device code, a refresh token), not a client waiting. */
const GUESS_ERRORS: ReadonlySet<string> = new Set(['invalid_grant', 'invalid_client']);

export function loginRoutes(deps: RouteDeps): Route[] {
  const { login } = deps;
  /**
   * Guessing is bounded per address (RFC 8628 §5.1 asks it of user codes): failed guesses count
   * against the same budget as failed pilot-token exchanges, in a budget of their own.
   */
  const guessKey = (req: IncomingMessage) => `login:${req.socket.remoteAddress ?? 'unknown'}`;
  const countGuess = (req: IncomingMessage, logger: Logger) =>
    deps.exchangeLimiter
      .recordFailure(guessKey(req))
      .catch((error: unknown) => logger.warn({ err: error }, 'login failure not counted'));
  /** The refusal owed to an address over its budget, or null. */
  const tooManyGuesses = async (req: IncomingMessage): Promise<PilothouseError | null> => {
    try {
      await deps.exchangeLimiter.check(guessKey(req));
      return null;
    } catch (error) {
      const coded = toPilothouseError(error);
      if (coded.code !== 'RATE_LIMITED') throw error;
      return coded;
    }
  };
  const form = { contentType: 'application/x-www-form-urlencoded', description: 'OAuth parameters' };
  return [
    {
      method: 'GET',
      path: '/.well-known/oauth-authorization-server',
      policy: 'public',
      summary: 'the authorization server metadata of user login (RFC 8414)',
      async handler({ req }) {
        const base = publicUrlOf(req, login.publicUrl);
        return {
          status: 200,
          json: {
            issuer: base,
            authorization_endpoint: `${base}/api/auth/authorize`,
            device_authorization_endpoint: `${base}/api/auth/device`,
            token_endpoint: `${base}/api/auth/token`,
            revocation_endpoint: `${base}/api/auth/token/revoke`,
            response_types_supported: ['code'],
            grant_types_supported: ['authorization_code', 'refresh_token', DEVICE_GRANT_TYPE],
            code_challenge_methods_supported: ['S256'],
            token_endpoint_auth_methods_supported: ['none'],
            scopes_supported: ['vo:NAME', 'group:NAME'],
            clients: [CLI_CLIENT_ID, WEB_CLIENT_ID],
            login_enabled: login.signIn.enabled,
          },
        };
      },
    },
    {
      method: 'POST',
      path: DEVICE_VERIFICATION_PATH,
      policy: 'public',
      summary: 'start a device sign-in (RFC 8628): client_id=pilothouse-cli, scope="vo:NAME [group:NAME]"',
      docs: { otherBodies: [form] },
      async handler({ req }) {
        try {
          const body = await readForm(req);
          const answer = await login.signIn.startDevice(
            body.get('client_id'),
            body.get('scope'),
            publicUrlOf(req, login.publicUrl),
          );
          return { status: 200, json: answer, headers: NO_STORE };
        } catch (error) {
          return oauthAnswer(error);
        }
      },
    },
    {
      method: 'GET',
      path: DEVICE_VERIFICATION_PATH,
      policy: 'public',
      summary: 'the page where a user types the code `pilothouse login` shows, then signs in at the identity provider',
      docs: { answer: { status: 302, description: 'to the identity provider (or a page asking for the code)' } },
      async handler({ req, query, logger }) {
        const typed = query.get('user_code');
        if (typed === null || typed.trim() === '') {
          return page(
            200,
            'Sign in to Pilothouse',
            `<form method="get" action="${DEVICE_VERIFICATION_PATH}"><label for="user_code">The code shown by <code>pilothouse login</code></label>
<input id="user_code" name="user_code" autocomplete="off" autofocus required> <button type="submit">Continue</button></form>`,
          );
        }
        const limited = await tooManyGuesses(req);
        if (limited) return refusalPage(limited);
        try {
          return redirect(await login.signIn.verifyUserCode(typed, publicUrlOf(req, login.publicUrl)));
        } catch (error) {
          if (toPilothouseError(error).httpStatus < 500) await countGuess(req, logger);
          return refusalPage(error);
        }
      },
    },
    {
      method: 'GET',
      path: '/api/auth/authorize',
      policy: 'public',
      summary: 'the authorization endpoint of the web application (code flow with PKCE S256, RFC 6749 §4.1, RFC 7636)',
      docs: { answer: { status: 302, description: 'to the identity provider, or back to redirect_uri with an error' } },
      async handler({ req, query }) {
        try {
          const url = await login.signIn.authorize(
            {
              responseType: query.get('response_type'),
              clientId: query.get('client_id'),
              redirectUri: query.get('redirect_uri'),
              codeChallenge: query.get('code_challenge'),
              codeChallengeMethod: query.get('code_challenge_method'),
              state: query.get('state'),
              scope: query.get('scope'),
            },
            publicUrlOf(req, login.publicUrl),
          );
          return redirect(url);
        } catch (error) {
          if (error instanceof OAuthError) {
            return page(
              error.status,
              'Sign-in refused',
              `<p>${escapeHtml(error.message)}</p><p><small>${error.error}</small></p>`,
            );
          }
          return refusalPage(error);
        }
      },
    },
    {
      method: 'GET',
      path: CALLBACK_PATH,
      policy: 'public',
      summary: "where the identity provider sends the user's browser back after a sign-in",
      docs: { answer: { status: 302, description: 'back to the web application, or a page for a device sign-in' } },
      async handler({ req }) {
        try {
          const outcome = await login.signIn.callback(new URL(req.url ?? '/', publicUrlOf(req, login.publicUrl)));
          if (outcome.kind === 'redirect') return redirect(outcome.location);
          if (outcome.kind === 'device-denied') {
            return page(200, 'Sign-in declined', '<p>Nothing was granted. You may close this window.</p>');
          }
          const { subject, vo, group } = outcome.identity;
          return page(
            200,
            'Signed in',
            `<p>Signed in as <strong>${escapeHtml(subject)}</strong> (VO ${escapeHtml(vo)}, group ${escapeHtml(group)}). Go back to your terminal; you may close this window.</p>`,
          );
        } catch (error) {
          return refusalPage(error);
        }
      },
    },
    {
      method: 'POST',
      path: '/api/auth/token',
      policy: 'public',
      summary: 'the token endpoint: device_code, authorization_code (with code_verifier) and refresh_token grants',
      docs: { otherBodies: [form] },
      async handler({ req, logger }) {
        const limited = await tooManyGuesses(req);
        if (limited) {
          return {
            status: 429,
            json: new OAuthError('temporarily_unavailable', limited.message).toJSON(),
            headers: { ...NO_STORE, 'retry-after': String(limited.details.retryAfterSec ?? 60) },
          };
        }
        try {
          return { status: 200, json: await login.tokenGrants.token(await readForm(req)), headers: NO_STORE };
        } catch (error) {
          if (error instanceof OAuthError && GUESS_ERRORS.has(error.error)) await countGuess(req, logger);
          return oauthAnswer(error);
        }
      },
    },
    {
      method: 'POST',
      path: '/api/auth/token/revoke',
      policy: 'public',
      summary: 'sign out (RFC 7009): a refresh token given here ends its sign-in and the access tokens issued in it',
      docs: { otherBodies: [form] },
      async handler({ req }) {
        try {
          await login.tokenGrants.revoke(await readForm(req));
          return { status: 200, json: {}, headers: NO_STORE };
        } catch (error) {
          return oauthAnswer(error);
        }
      },
    },
  ];
}
