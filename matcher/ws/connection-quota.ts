/**
 * Open pilot connections per token, in this matcher process. A pilot holds one connection (a few
 * overlap while a reconnect races the old socket's close); a stolen or leaked token must not open
 * thousands, each with its own buffers and parked offers.
 */
import { PilothouseError } from '../../shared/errors.ts';

export class ConnectionQuota {
  readonly #maxPerToken: number;
  readonly #open = new Map<string, number>();

  constructor(maxPerToken: number) {
    this.#maxPerToken = maxPerToken;
  }

  /** Counts one more connection of `tokenId`, or throws TOO_MANY_CONNECTIONS; returns its release. */
  acquire(tokenId: string): () => void {
    const count = this.#open.get(tokenId) ?? 0;
    if (count >= this.#maxPerToken) {
      throw new PilothouseError(
        'TOO_MANY_CONNECTIONS',
        `this token already holds ${count} open pilot connections, the most allowed (see --max-connections-per-token)`,
        { maxConnections: this.#maxPerToken },
      );
    }
    this.#open.set(tokenId, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#open.get(tokenId) ?? 1) - 1;
      if (left > 0) this.#open.set(tokenId, left);
      else this.#open.delete(tokenId);
    };
  }

  /** Open connections of this token. */
  openOf(tokenId: string): number {
    return this.#open.get(tokenId) ?? 0;
  }
}
