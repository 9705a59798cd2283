/**
 * Several addresses of one matcher service (replicas without a load balancer, or several load
 * balancers): clients use one and move to the next when it cannot be reached. Which one is in use is
 * shared by everything a client does (a pilot's WebSocket, its token exchanges and sandbox transfers),
 * so that they fail over together.
 */
import { PilothouseError } from './errors.ts';

export class MatcherEndpoints {
  readonly #urls: readonly string[];
  #index = 0;

  constructor(urls: readonly string[]) {
    if (urls.length === 0) throw new Error('no matcher URL');
    this.#urls = urls.map((url) => url.replace(/\/+$/, ''));
  }

  static single(url: string): MatcherEndpoints {
    return new MatcherEndpoints([url]);
  }

  /** The base URL in use (http/https). */
  get base(): string {
    return this.#urls[this.#index] as string;
  }

  /** The pilot WebSocket of the URL in use. */
  get connectUrl(): string {
    return `${this.base.replace(/^http/, 'ws')}/api/pilots/connect`;
  }

  get all(): readonly string[] {
    return this.#urls;
  }

  /** `base` could not be reached: the next one is used, unless another caller moved on already. */
  unreachable(base: string): void {
    if (this.#urls.length > 1 && this.base === base) this.#index = (this.#index + 1) % this.#urls.length;
  }
}

/**
 * `--matcher` as given: one http(s) URL or several separated by commas. Throws CONFIG_INVALID naming
 * the option and the URL that is wrong.
 */
export function parseMatcherUrls(list: string, option = '--matcher'): string[] {
  const urls = list
    .split(',')
    .map((url) => url.trim())
    .filter((url) => url !== '');
  if (urls.length === 0) {
    throw new PilothouseError('CONFIG_INVALID', `${option} needs at least one http(s) URL`, { field: 'matcher' });
  }
  for (const one of urls) {
    let protocol = '';
    try {
      protocol = new URL(one).protocol;
    } catch {
      // reported below
    }
    if (protocol !== 'http:' && protocol !== 'https:') {
      throw new PilothouseError(
        'CONFIG_INVALID',
        `${option} must be http(s) URLs separated by commas; "${one}" is not one`,
        { field: 'matcher' },
      );
    }
  }
  return urls.map((url) => url.replace(/\/+$/, ''));
}

/**
 * The request never reached the address (refused, no route, no such host, connect timeout): sending
 * it to the next address cannot make anything happen twice.
 */
export function isConnectFailure(error: unknown): boolean {
  const code =
    (error as { code?: string; cause?: { code?: string } }).code ??
    (error as { cause?: { code?: string } }).cause?.code;
  return ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT'].includes(
    code ?? '',
  );
}

/**
 * Sends through the address in use. A request that never reached it is sent to the next address
 * (each one once at most: it cannot have been applied anywhere); any failure moves later requests on
 * to the next address. What the last address gave is MATCHER_UNREACHABLE (retryable).
 */
export async function sendWithFailover<T>(endpoints: MatcherEndpoints, send: (base: string) => Promise<T>): Promise<T> {
  let lastError: unknown;
  for (let tried = 0; tried < endpoints.all.length; tried += 1) {
    const base = endpoints.base;
    try {
      return await send(base);
    } catch (error) {
      lastError = error;
      endpoints.unreachable(base);
      if (!isConnectFailure(error)) break;
    }
  }
  throw new PilothouseError(
    'MATCHER_UNREACHABLE',
    `cannot reach the matcher at ${endpoints.all.join(', ')}: ${(lastError as Error).message}`,
    {},
    { cause: lastError },
  );
}
