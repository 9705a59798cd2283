/**
 * Moving sandboxes between the pilot and the matcher over HTTP, authenticated with the
 * job's token. Downloads are streamed to a file, capped and checked against their sha256; uploads
 * stream a file. Network errors and 5xx/408/429 answers are retried with backoff (at least `attempts`
 * times, and for `retryWindowMs`, so that a matcher restart does not cost a job its output); other
 * answers are final.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { IncomingMessage } from 'node:http';
import { discard, httpRequest, readErrorAnswer, type MatcherAgent } from './http-request.ts';
import type { MatcherEndpoints } from '../shared/endpoints.ts';
import type { Logger } from '../shared/logger.ts';
import { backoffDelayMs, delay, type BackoffOptions } from '../shared/backoff.ts';
import { ERROR_CODES, PilothouseError, isErrorCode, type ErrorCode } from '../shared/errors.ts';

export interface SandboxTransfer {
  /** Downloads `ref` (sha256:<hex>) into `destFile` and verifies it. */
  download(ref: string, jobToken: string, destFile: string, signal?: AbortSignal): Promise<void>;
  /** Uploads `file`, whose checksum is `ref`. */
  upload(file: string, ref: string, jobToken: string, signal?: AbortSignal): Promise<void>;
}

export interface HttpSandboxTransferOptions {
  /** The matcher's addresses (a transfer that cannot reach one retries on the next). */
  matcher: MatcherEndpoints;
  maxDownloadBytes: number;
  /** Tries per transfer, the first one included... */
  attempts: number;
  /** ...and retryable failures keep being retried until this long after the first try. */
  retryWindowMs?: number;
  backoff: BackoffOptions;
  logger: Logger;
  /** Connections that trust the --ca-file bundle (https matchers); default: Node's global agents. */
  agent?: MatcherAgent | undefined;
}

const SHA256_REF = /^sha256:[0-9a-f]{64}$/;

export class HttpSandboxTransfer implements SandboxTransfer {
  readonly #options: HttpSandboxTransferOptions;

  constructor(options: HttpSandboxTransferOptions) {
    this.#options = options;
  }

  async download(ref: string, jobToken: string, destFile: string, signal?: AbortSignal): Promise<void> {
    if (!SHA256_REF.test(ref)) throw new PilothouseError('VALIDATION_FAILED', `bad sandbox reference ${ref}`);
    await this.#withRetries('download', ref, signal, async () => {
      const response = await httpRequest(this.#url(ref), {
        method: 'GET',
        headers: { authorization: `Bearer ${jobToken}` },
        signal,
        agent: this.#options.agent,
      });
      const status = response.statusCode ?? 0;
      if (status !== 200) throw await answerError(response, `GET sandbox ${ref}`);
      const hash = createHash('sha256');
      let bytes = 0;
      const max = this.#options.maxDownloadBytes;
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length;
          if (bytes > max) {
            callback(new PilothouseError('SANDBOX_TOO_LARGE', `sandbox ${ref} exceeds ${max} bytes`));
            return;
          }
          hash.update(chunk);
          callback(null, chunk);
        },
      });
      await pipeline(response, meter, createWriteStream(destFile));
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== ref) {
        throw new PilothouseError('SANDBOX_CHECKSUM_MISMATCH', `sandbox ${ref} downloaded with checksum ${actual}`);
      }
    });
  }

  async upload(file: string, ref: string, jobToken: string, signal?: AbortSignal): Promise<void> {
    await this.#withRetries('upload', ref, signal, async () => {
      const { size } = await stat(file);
      const response = await httpRequest(this.#url(ref), {
        method: 'PUT',
        headers: {
          authorization: `Bearer ${jobToken}`,
          'content-type': 'application/gzip',
          'content-length': String(size),
        },
        body: createReadStream(file),
        signal,
        agent: this.#options.agent,
      });
      const status = response.statusCode ?? 0;
      if (status !== 200 && status !== 201) throw await answerError(response, `PUT sandbox ${ref}`);
      await discard(response);
    });
  }

  #url(ref: string): string {
    return `${this.#options.matcher.base}/api/sandboxes/${ref}`;
  }

  async #withRetries(
    operation: string,
    ref: string,
    signal: AbortSignal | undefined,
    attempt: () => Promise<void>,
  ): Promise<void> {
    const giveUpAt = Date.now() + (this.#options.retryWindowMs ?? 0);
    for (let tries = 1; ; tries += 1) {
      const base = this.#options.matcher.base;
      try {
        await attempt();
        return;
      } catch (thrown) {
        if (!(thrown instanceof PilothouseError)) this.#options.matcher.unreachable(base);
        const error = asTransferError(thrown);
        if (signal?.aborted || !error.retryable || (tries >= this.#options.attempts && Date.now() >= giveUpAt))
          throw error;
        const delayMs = backoffDelayMs(tries - 1, this.#options.backoff);
        this.#options.logger.warn(
          { operation, ref, tries, delayMs, code: error.code, err: error.message },
          'sandbox transfer retry',
        );
        await delay(delayMs, signal);
      }
    }
  }
}

/**
 * An error answer as the matcher coded it (STORE_UNAVAILABLE during a database outage, say: the log
 * and the retry decision then say what happened), else by its HTTP status.
 */
async function answerError(response: IncomingMessage, what: string): Promise<PilothouseError> {
  const status = response.statusCode ?? 0;
  const answer = await readErrorAnswer(response).catch(() => null);
  // A transient status keeps being retried even if its code says otherwise (an INTERNAL 500, say).
  const transient = status === 408 || status === 429 || status >= 500;
  if (answer && isErrorCode(answer.code) && (!transient || ERROR_CODES[answer.code].retryable)) {
    const message = typeof answer.message === 'string' ? answer.message : `HTTP ${status}`;
    return new PilothouseError(answer.code, `${what}: ${message} (HTTP ${status})`, { httpStatus: status });
  }
  return httpError(status, what);
}

function httpError(status: number, what: string): PilothouseError {
  const code: ErrorCode =
    status === 401
      ? 'TOKEN_INVALID'
      : status === 403
        ? 'FORBIDDEN'
        : status === 404
          ? 'SANDBOX_NOT_FOUND'
          : status === 413
            ? 'SANDBOX_TOO_LARGE'
            : status === 408 || status === 429 || status >= 500
              ? 'MATCHER_UNREACHABLE'
              : 'VALIDATION_FAILED';
  return new PilothouseError(code, `${what}: HTTP ${status}`, { httpStatus: status });
}

function asTransferError(thrown: unknown): PilothouseError {
  if (thrown instanceof PilothouseError) return thrown;
  const error = thrown instanceof Error ? thrown : new Error(String(thrown));
  // Anything that is not an answer from the matcher (refused, reset, timeout) is worth another try.
  return new PilothouseError('MATCHER_UNREACHABLE', error.message, {}, { cause: error });
}
