/**
 * A small router over node:http. Every route declares a policy; the router authenticates the bearer
 * token and checks the policy before the handler runs, so no route can forget authorization
 * (test/matcher/routes-policy.int.test.ts enumerates the table). Errors become
 * `{ "error": { code, message, field?, retryable } }` with the code's HTTP status.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { z } from 'zod';
import { pipeline } from 'node:stream/promises';
import { PilothouseError } from '../../shared/errors.ts';
import { toAnswerError } from '../store/store-errors.ts';
import type { Principal } from '../../shared/auth/claims.ts';
import type { Logger } from '../../shared/logger.ts';
import { POLICIES, type PolicyName } from '../auth/policy.ts';
import type { TokenService } from '../auth/tokens.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RequestContext {
  req: IncomingMessage;
  params: Record<string, string>;
  query: URLSearchParams;
  /** Null only on public routes. */
  principal: Principal | null;
  logger: Logger;
}

export type Reply =
  | { status: number; json: unknown; headers?: Record<string, string> }
  | { status: number; stream: Readable; headers: Record<string, string> };

/**
 * What /api/openapi.json says of a route: the schemas its handler validates with (the same objects,
 * so the document cannot drift from what is enforced) and what it answers.
 */
export interface RouteDocs {
  /** The JSON body, as validated; 'none' for a POST that takes none. */
  body?: z.ZodType | 'none';
  /** Bodies in other media types (a JDL, a gzip sandbox), with what they hold. */
  otherBodies?: { contentType: string; description: string }[];
  /** Query parameters, as validated. */
  query?: z.ZodObject;
  /** The success answer (default: 200 with a JSON body). */
  answer?: { status: number; description: string; schema?: z.ZodType; contentType?: string };
}

export interface Route {
  method: HttpMethod;
  path: string;
  policy: PolicyName;
  summary: string;
  docs?: RouteDocs;
  handler(ctx: RequestContext): Promise<Reply>;
}

interface CompiledRoute extends Route {
  pattern: RegExp;
  paramNames: string[];
}

/** Told about every answer: method, route pattern ('unmatched' when none), status, seconds taken. */
export type AnswerObserver = (method: string, route: string, status: number, seconds: number) => void;

/** A request id a client sent, when it is one we can safely echo and log; else a new one. */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(req: IncomingMessage): string {
  const sent = req.headers['x-request-id'];
  return typeof sent === 'string' && CLIENT_REQUEST_ID.test(sent) ? sent : randomUUID();
}

export class Router {
  readonly #routes: CompiledRoute[] = [];
  readonly #tokens: TokenService;
  readonly #logger: Logger;
  readonly #onAnswered: AnswerObserver;

  constructor(deps: { tokens: TokenService; logger: Logger; onAnswered?: AnswerObserver }) {
    this.#tokens = deps.tokens;
    this.#logger = deps.logger;
    this.#onAnswered = deps.onAnswered ?? (() => {});
  }

  add(route: Route): void {
    const paramNames: string[] = [];
    const source = route.path
      .split('/')
      .map((part) => {
        if (!part.startsWith(':')) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        paramNames.push(part.slice(1));
        return '([^/]+)';
      })
      .join('/');
    const compiled = { ...route, pattern: new RegExp(`^${source}$`), paramNames };
    // Static paths win over parameterised ones (GET /api/pilots/connect is not GET /api/pilots/:id),
    // whatever the registration order: a route is never shadowed by a broader one.
    const firstWithParams = this.#routes.findIndex((r) => r.paramNames.length > 0);
    if (paramNames.length === 0 && firstWithParams >= 0) this.#routes.splice(firstWithParams, 0, compiled);
    else this.#routes.push(compiled);
  }

  /** The registered routes, for the policy enumeration test and /api/openapi.json. */
  routes(): readonly Route[] {
    return this.#routes;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    // Every answer, refusals included, carries the id its log lines carry.
    const requestId = requestIdOf(req);
    res.setHeader('x-request-id', requestId);
    const url = requestUrl(req);
    const logger = this.#logger.child({
      requestId,
      method: req.method,
      path: url?.pathname ?? req.url,
      remoteAddress: req.socket.remoteAddress,
    });
    const matched = { route: 'unmatched' };
    res.once('close', () =>
      this.#onAnswered(req.method ?? '', matched.route, res.statusCode, (performance.now() - started) / 1000),
    );
    try {
      if (url === null) throw new PilothouseError('BAD_PATH', 'the request target is not a valid URL path');
      const reply = await this.#dispatch(req, url, logger, matched);
      await send(res, reply);
    } catch (thrown) {
      const error = toAnswerError(thrown);
      if (error.code === 'INTERNAL') logger.error({ err: error.cause ?? error }, 'request failed');
      else if (error.httpStatus === 401 || error.httpStatus === 403 || error.httpStatus === 429) {
        // Refused credentials are security events: always on record (never the token itself).
        logger.info({ code: error.code, reason: error.message }, 'request refused');
      } else logger.debug({ code: error.code }, 'request refused');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      await sendError(res, error);
    }
  }

  async #dispatch(req: IncomingMessage, url: URL, logger: Logger, matched: { route: string }): Promise<Reply> {
    let pathMatched = false;
    for (const route of this.#routes) {
      const match = route.pattern.exec(url.pathname);
      if (!match) continue;
      pathMatched = true;
      if (route.method !== req.method) continue;
      matched.route = route.path;
      const params: Record<string, string> = {};
      route.paramNames.forEach((name, index) => {
        params[name] = decodePathSegment(match[index + 1] ?? '');
      });
      const principal = await this.authenticate(req, route.policy);
      return route.handler({ req, params, query: url.searchParams, principal, logger });
    }
    if (pathMatched) throw new PilothouseError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname}`);
    throw new PilothouseError('ROUTE_NOT_FOUND', `no route ${url.pathname}`);
  }

  /** Verifies the bearer token (unless the policy is public) and checks the route's policy. */
  async authenticate(req: IncomingMessage, policyName: PolicyName): Promise<Principal | null> {
    const policy = POLICIES[policyName];
    if (policy.public) return null;
    const principal = await this.#tokens.verify(bearerToken(req));
    policy.check(principal);
    return principal;
  }
}

/** The request's URL, or null when its target cannot be parsed (hostile clients send anything). */
export function requestUrl(req: IncomingMessage): URL | null {
  try {
    return new URL(req.url ?? '/', 'http://matcher.invalid');
  } catch {
    return null;
  }
}

function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new PilothouseError('BAD_PATH', `the path segment '${segment.slice(0, 64)}' is not valid percent-encoding`);
  }
}

export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw new PilothouseError('TOKEN_INVALID', 'the Authorization header must be "Bearer <token>"');
  return match[1];
}

/** The answer to a refused request: `{ "error": { code, message, retryable, ... } }` with the code's status. */
export function sendError(res: ServerResponse, error: PilothouseError): Promise<void> {
  return send(res, { status: error.httpStatus, json: { error: error.toJSON() } });
}

async function send(res: ServerResponse, reply: Reply): Promise<void> {
  if ('json' in reply) {
    const body = JSON.stringify(reply.json);
    res.writeHead(reply.status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      ...reply.headers,
    });
    res.end(body);
    return;
  }
  res.writeHead(reply.status, reply.headers);
  await pipeline(reply.stream, res);
}

/** Reads a JSON body of at most `maxBytes`; BAD_JSON / UNSUPPORTED_MEDIA_TYPE / PAYLOAD_TOO_LARGE otherwise. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  if (!JSON_CONTENT.test(req.headers['content-type'] ?? '')) {
    throw new PilothouseError('UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json');
  }
  const text = await readTextBody(req, maxBytes);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new PilothouseError('BAD_JSON', `the body is not valid JSON: ${(error as Error).message}`);
  }
}

const JSON_CONTENT = /^application\/json\b/i;

export function isJsonBody(req: IncomingMessage): boolean {
  return JSON_CONTENT.test(req.headers['content-type'] ?? '');
}

/** Reads a UTF-8 body of at most `maxBytes` (PAYLOAD_TOO_LARGE beyond it, before reading when declared). */
export async function readTextBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > maxBytes) throw new PilothouseError('PAYLOAD_TOO_LARGE', `the body exceeds ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new PilothouseError('PAYLOAD_TOO_LARGE', `the body exceeds ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** RFC 7233 Content-Range of a page of a search (`jobs 0-99/1234`); none for an empty page. */
export function contentRange(
  unit: string,
  page: number,
  perPage: number,
  count: number,
  total: number,
): Record<string, string> {
  if (count === 0) return {};
  const first = (page - 1) * perPage;
  return { 'content-range': `${unit} ${first}-${first + count - 1}/${total}` };
}
