/**
 * The REST client the CLI commands share. Errors from the matcher come back as PilothouseError with
 * the server's code; a matcher that cannot be reached is MATCHER_UNREACHABLE (retryable). An https
 * matcher is verified against `--ca-file` / PILOTHOUSE_CA_FILE when given (else Node's roots).
 */
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { PilothouseError, isErrorCode } from '../shared/errors.ts';
import { MatcherEndpoints, parseMatcherUrls, sendWithFailover } from '../shared/endpoints.ts';
import { savedAccessToken } from './matcher-login.ts';

export interface ClientOptions {
  matcher?: string | undefined;
  tokenFile?: string | undefined;
  caFile?: string | undefined;
}

export const DEFAULT_MATCHER_URL = 'http://127.0.0.1:8080';
/** Uploads go out in pieces this large, each one a step of the progress bar. */
const UPLOAD_CHUNK_BYTES = 1024 * 1024;

export class MatcherClient {
  readonly #endpoints: MatcherEndpoints;
  readonly #token: string;
  readonly #dispatcher: Dispatcher | undefined;

  /** `baseUrl`: one matcher URL, or several comma-separated (tried in turn when one is unreachable). */
  constructor(baseUrl: string, token: string, options: { caPem?: string | undefined } = {}) {
    this.#endpoints = new MatcherEndpoints(parseMatcherUrls(baseUrl));
    this.#token = token;
    this.#dispatcher = options.caPem === undefined ? undefined : new Agent({ connect: { ca: options.caPem } });
  }

  static async fromOptions(options: ClientOptions, env: NodeJS.ProcessEnv = process.env): Promise<MatcherClient> {
    const base = options.matcher ?? env.PILOTHOUSE_MATCHER ?? DEFAULT_MATCHER_URL;
    const caPem = await readCaFile(options.caFile ?? env.PILOTHOUSE_CA_FILE);
    const first = parseMatcherUrls(base)[0] as string;
    return new MatcherClient(base, await resolveToken(options.tokenFile, env, first, caPem), { caPem });
  }

  /** `headers`: extra request headers, e.g. If-Match. */
  async json<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: T; headers: Record<string, unknown> }> {
    const response = await this.#send(
      method,
      path,
      body === undefined ? undefined : JSON.stringify(body),
      'application/json',
      headers,
    );
    const text = await response.body.text();
    const parsed = text ? (JSON.parse(text) as unknown) : null;
    if (response.statusCode >= 400) throw errorFromResponse(response.statusCode, parsed);
    return { status: response.statusCode, body: parsed as T, headers: response.headers };
  }

  /**
   * A request with a body already encoded (a JDL, a sandbox): JSON answer as for `json`. `onSent` is
   * told how many bytes have gone out, for a progress bar.
   */
  async sendBytes<T>(
    method: string,
    path: string,
    bytes: Buffer,
    contentType: string,
    onSent?: (bytes: number) => void,
  ): Promise<{ status: number; body: T }> {
    const headers = {
      authorization: `Bearer ${this.#token}`,
      'content-type': contentType,
      'content-length': String(bytes.length),
    };
    const chunks = function* (): Generator<Buffer> {
      for (let at = 0; at < bytes.length; at += UPLOAD_CHUNK_BYTES) {
        yield bytes.subarray(at, at + UPLOAD_CHUNK_BYTES);
        onSent?.(Math.min(bytes.length, at + UPLOAD_CHUNK_BYTES));
      }
    };
    const response = await sendWithFailover(this.#endpoints, (base) =>
      request(`${base}${path}`, {
        method: method as 'PUT',
        headers,
        body: Readable.from(chunks()),
        ...(this.#dispatcher && { dispatcher: this.#dispatcher }),
      }),
    );
    const text = await response.body.text();
    const parsed = text ? (JSON.parse(text) as unknown) : null;
    if (response.statusCode >= 400) throw errorFromResponse(response.statusCode, parsed);
    return { status: response.statusCode, body: parsed as T };
  }

  /** GET of a binary body (sandboxes), as a stream. */
  async download(path: string): Promise<Readable> {
    const response = await this.#send('GET', path, undefined, undefined, {});
    if (response.statusCode >= 400) {
      const text = await response.body.text();
      throw errorFromResponse(response.statusCode, text ? (JSON.parse(text) as unknown) : null);
    }
    return Readable.from(response.body);
  }

  /** The matcher URL in use (the next one after an unreachable one). */
  get baseUrl(): string {
    return this.#endpoints.base;
  }

  async #send(
    method: string,
    path: string,
    body: string | undefined,
    contentType: string | undefined,
    extraHeaders: Record<string, string>,
  ) {
    const headers: Record<string, string> = { ...extraHeaders, authorization: `Bearer ${this.#token}` };
    if (contentType && body !== undefined) headers['content-type'] = contentType;
    return sendWithFailover(this.#endpoints, (base) =>
      request(`${base}${path}`, {
        method: method as 'GET',
        headers,
        body,
        ...(this.#dispatcher && { dispatcher: this.#dispatcher }),
      }),
    );
  }
}

/** The CA bundle (PEM) that verifies an https matcher; undefined = Node's default roots. */
export async function readCaFile(file: string | undefined): Promise<string | undefined> {
  if (file === undefined || file === '') return undefined;
  try {
    const pem = await readFile(file, 'utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM certificate in it');
    return pem;
  } catch (error) {
    throw new PilothouseError('CONFIG_INVALID', `cannot use the CA file ${file}: ${(error as Error).message}`, {
      field: 'caFile',
    });
  }
}

/**
 * The token a command uses: --token-file, else PILOTHOUSE_TOKEN_FILE, else PILOTHOUSE_TOKEN, else the
 * sign-in `pilothouse login` saved for this matcher (refreshed when about to expire).
 */
export async function resolveToken(
  tokenFile: string | undefined,
  env: NodeJS.ProcessEnv,
  matcherUrl?: string,
  caPem?: string,
): Promise<string> {
  const file = tokenFile ?? env.PILOTHOUSE_TOKEN_FILE;
  if (file) {
    try {
      const token = (await readFile(file, 'utf8')).trim();
      if (token) return token;
    } catch (error) {
      throw new PilothouseError('CONFIG_INVALID', `cannot read the token file ${file}: ${(error as Error).message}`, {
        field: 'tokenFile',
      });
    }
    throw new PilothouseError('CONFIG_INVALID', `the token file ${file} is empty`, { field: 'tokenFile' });
  }
  if (env.PILOTHOUSE_TOKEN) return env.PILOTHOUSE_TOKEN.trim();
  const saved = matcherUrl === undefined ? null : await savedAccessToken(matcherUrl, { caPem });
  if (saved !== null) return saved;
  throw new PilothouseError(
    'TOKEN_MISSING',
    'no token: run pilothouse login, pass --token-file FILE or set PILOTHOUSE_TOKEN',
  );
}

function errorFromResponse(status: number, body: unknown): PilothouseError {
  const error = (body as { error?: { code?: unknown; message?: unknown; field?: unknown } } | null)?.error;
  const code = isErrorCode(error?.code) ? error.code : status >= 500 ? 'INTERNAL' : 'VALIDATION_FAILED';
  const message = typeof error?.message === 'string' ? error.message : `HTTP ${status}`;
  return new PilothouseError(code, message, typeof error?.field === 'string' ? { field: error.field } : {});
}
