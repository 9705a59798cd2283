/**
 * Open pilot connections per token. A leaked or stolen pilot token must not let one client hold
 * thousands of sockets (each a session, a parked offer, memory): past `maxPerToken`, new upgrades
 * with that token are refused with TOO_MANY_CONNECTIONS while the others keep being served. Pilots
 * sharing one static token (a whole site) need a generous limit; exchanged tokens are one per pilot.
 */
export class ConnectionQuota {
  readonly #maxPerToken: number;
  readonly #open = new Map<string, number>();

  constructor(maxPerToken: number) {
    this.#maxPerToken = maxPerToken;
  }

  /** Counts a new connection for `tokenId`; false (nothing counted) when it already has its maximum. */
  acquire(tokenId: string): boolean {
    const open = this.#open.get(tokenId) ?? 0;
    if (open >= this.#maxPerToken) return false;
    this.#open.set(tokenId, open + 1);
    return true;
  }

  release(tokenId: string): void {
    const open = (this.#open.get(tokenId) ?? 0) - 1;
    if (open <= 0) this.#open.delete(tokenId);
    else this.#open.set(tokenId, open);
  }

  openFor(tokenId: string): number {
    return this.#open.get(tokenId) ?? 0;
  }
}
