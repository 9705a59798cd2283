/**
 * The pilot's few HTTP calls (pilot-token exchange, sandbox transfers) over Node's own http/https
 * clients. undici did this before and cost 0.5 MB of the 1.8 MB bundle, for two request shapes that
 * Node's client handles as well: a JSON POST and a streamed GET/PUT. An https matcher under a private
 * CA is trusted through `MatcherAgent` (built once from --ca-file), as the WebSocket does.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';

/** No byte for this long, once connected, and the call fails (as undici's default body timeout). */
const IDLE_TIMEOUT_MS = 300_000;

/** Connections to the matcher: kept alive, and trusting `caPem` for https when given. */
export class MatcherAgent {
  readonly http = new http.Agent({ keepAlive: true });
  readonly https: https.Agent;

  constructor(caPem: string | null) {
    this.https = new https.Agent({ keepAlive: true, ...(caPem !== null && { ca: caPem }) });
  }

  close(): void {
    this.http.destroy();
    this.https.destroy();
  }
}

export interface HttpCall {
  method: 'GET' | 'POST' | 'PUT';
  headers?: Record<string, string>;
  /** A whole body, or a stream piped out (give its content-length in `headers`). */
  body?: string | Readable;
  signal?: AbortSignal | undefined;
  agent?: MatcherAgent | undefined;
}

/**
 * Sends the request; resolves with the answer once its headers are in (the body is the stream), or
 * rejects with the network error (refused, reset, TLS, aborted, idle too long).
 */
export function httpRequest(url: string, call: HttpCall): Promise<IncomingMessage> {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  const client = secure ? https : http;
  const agent = call.agent === undefined ? undefined : secure ? call.agent.https : call.agent.http;
  return new Promise((resolve, reject) => {
    const request = client.request(target, {
      method: call.method,
      headers: call.headers ?? {},
      ...(agent !== undefined && { agent }),
      ...(call.signal !== undefined && { signal: call.signal }),
      timeout: IDLE_TIMEOUT_MS,
    });
    request.once('error', reject);
    request.once('timeout', () =>
      request.destroy(new Error(`no answer from ${target.origin} within ${IDLE_TIMEOUT_MS} ms`)),
    );
    request.once('response', (response) => {
      // An error of the body after the headers belongs to whoever reads it.
      request.off('error', reject);
      request.on('error', (error) => response.destroy(error));
      resolve(response);
    });
    const { body } = call;
    if (body === undefined || typeof body === 'string') request.end(body);
    else {
      body.once('error', (error) => request.destroy(error));
      body.pipe(request);
    }
  });
}

/** The answer's body as text (JSON answers are small). */
export async function readText(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads and drops the body, so that the connection can be reused. */
export async function discard(response: IncomingMessage): Promise<void> {
  response.resume();
  if (!response.complete) await new Promise<void>((resolve) => response.once('close', resolve));
}

/** Bytes of an error answer read for its code; the rest is dropped. */
const ERROR_BODY_MAX_BYTES = 16 * 1024;

/**
 * The matcher's `{"error": {"code", "message"}}` of an error answer, or null when the body is not one
 * (a proxy's page, say). Reads at most ERROR_BODY_MAX_BYTES and drops the rest.
 */
export async function readErrorAnswer(response: IncomingMessage): Promise<{ code: unknown; message: unknown } | null> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of response) {
    if (bytes < ERROR_BODY_MAX_BYTES) chunks.push(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  try {
    return errorOfAnswer(JSON.parse(Buffer.concat(chunks).toString('utf8')));
  } catch {
    return null;
  }
}

/** The `error` member of a parsed answer body, when it has one. */
export function errorOfAnswer(parsed: unknown): { code: unknown; message: unknown } | null {
  const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return error && typeof error === 'object' ? { code: error.code, message: error.message } : null;
}
