/**
 * A real OpenID Connect provider for tests: `oidc-provider` (OpenID Certified) in this process on
 * port 0, standing in for a community's IdP (INDIGO IAM, EGI Check-in). Its development sign-in pages
 * accept any login; the accounts' groups come from `users`. `browse` plays a user's browser through
 * it: follows redirects with a cookie jar, signs in, consents (or declines), and stops at the first
 * answer that leaves the IdP for somewhere other than the matcher's callback.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

export interface TestIdp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Registers the matcher's callback (known once the matcher listens). */
  allowRedirect(uri: string): void;
  close(): Promise<void>;
}

export interface BrowseResult {
  /** The last answer: the matcher's page, or a redirect to an application (not followed). */
  status: number;
  location: string | null;
  body: string;
  /** Every URL visited, in order. */
  visited: string[];
}

export async function startTestIdp(users: Record<string, { groups: string[] }>): Promise<TestIdp> {
  const redirectUris: string[] = [];
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | null = null;
  const server: Server = createServer((req, res) => {
    if (handler) handler(req, res);
    else res.writeHead(503).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = 'pilothouse';
  const clientSecret = 'test-client-secret-0123456789abcdef';
  const build = () =>
    new Provider(issuer, {
      clients: [
        {
          client_id: clientId,
          client_secret: clientSecret,
          redirect_uris: redirectUris.length > 0 ? [...redirectUris] : ['http://127.0.0.1/unused'],
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_post',
        },
      ],
      claims: { openid: ['sub'], groups: ['groups'], profile: ['name'] },
      scopes: ['openid', 'groups', 'profile'],
      cookies: { keys: ['pilothouse-test-idp-cookie-key'] },
      features: { devInteractions: { enabled: true } },
      async findAccount(_ctx: unknown, id: string) {
        return {
          accountId: id,
          async claims() {
            return { sub: id, name: id, groups: users[id]?.groups ?? [] };
          },
        };
      },
    });
  const mount = () => {
    const provider = build();
    // oidc-provider warns about its development keys and interactions: expected in a test.
    provider.on('server_error', () => {});
    handler = provider.callback() as typeof handler;
  };
  mount();
  return {
    issuer,
    clientId,
    clientSecret,
    allowRedirect(uri) {
      redirectUris.push(uri);
      mount();
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/**
 * A user's browser from `startUrl`: redirects followed (cookies kept per origin), the IdP's sign-in
 * form filled with `login`, its consent given (or, with `decline`, the sign-in aborted). Stops at a
 * redirect to `stopAtOrigin`'s non-API paths (the web application) or at a final page.
 */
export async function browse(
  startUrl: string,
  options: { login: string; decline?: boolean; stopAt?: (url: URL) => boolean; fetchInit?: RequestInit },
): Promise<BrowseResult> {
  const jar = new Map<string, Map<string, string>>();
  const visited: string[] = [];
  let url = new URL(startUrl);
  let method = 'GET';
  let body: string | undefined;
  for (let hops = 0; hops < 30; hops += 1) {
    visited.push(url.toString());
    const cookies = jar.get(url.origin) ?? new Map<string, string>();
    const response = await fetch(url, {
      ...options.fetchInit,
      method,
      redirect: 'manual',
      headers: {
        cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; '),
        ...(body !== undefined && { 'content-type': 'application/x-www-form-urlencoded' }),
      },
      ...(body !== undefined && { body }),
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const [name, ...value] = (pair ?? '').split('=');
      if (name) cookies.set(name.trim(), value.join('='));
    }
    jar.set(url.origin, cookies);
    const location = response.headers.get('location');
    const text = await response.text();
    if (location !== null && response.status >= 300 && response.status < 400) {
      const next = new URL(location, url);
      if (options.stopAt?.(next)) return { status: response.status, location: next.toString(), body: text, visited };
      url = next;
      method = 'GET';
      body = undefined;
      continue;
    }
    const action = /<form[^>]*action="([^"]+)"[^>]*method="post"/i.exec(text)?.[1];
    const prompt = /name="prompt" value="(\w+)"/.exec(text)?.[1];
    if (action && prompt) {
      const target = new URL(action.replace(/&amp;/g, '&'), url);
      if (options.decline) {
        url = new URL(`${target.pathname.replace(/\/$/, '')}/abort`, url);
        method = 'GET';
        body = undefined;
        continue;
      }
      url = target;
      method = 'POST';
      body = new URLSearchParams(
        prompt === 'login' ? { prompt, login: options.login, password: 'any' } : { prompt },
      ).toString();
      continue;
    }
    return { status: response.status, location, body: text, visited };
  }
  throw new Error(`too many redirects: ${visited.join(' → ')}`);
}
