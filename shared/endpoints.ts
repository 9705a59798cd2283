/**
 * Several addresses of one matcher service (replicas without a load balancer, or several load
 * balancers): clients use one and move to the next when it cannot be reached. Which one is in use is
 * shared by everything a client does (a pilot's WebSocket, its token exchanges and sandbox transfers),
 * so that they fail over together.
 */
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
