/**
 * Fair-share usage exchanged between the matchers sharing a store. Each matcher charges its own
 * matches to its stride schedulers at once, and at every sync adds them to the shared totals and
 * learns what the others charged since its last sync, which it charges too. So every replica ranks
 * groups and owners by the usage of the whole cluster, late by one sync interval at most: when the
 * pilots of one group sit mostly on one replica, the others still see that group's usage.
 *
 * Usage from before this matcher's first sync is not charged: stride scheduling compares usage from
 * a common start, and history would make a returning group wait for everybody else to catch up.
 */
import type { JobStore, ShareUsage } from '../store/job-store.ts';

type UsageTotals = Pick<JobStore, 'addShareUsage'>;

export class SharedUsage {
  readonly #store: UsageTotals;
  /** Charged here since the last sync, per scope and entity. */
  #pending = new Map<string, ShareUsage>();
  /** The totals as of the last sync. */
  readonly #seen = new Map<string, number>();
  #synced = false;
  #syncing: Promise<ShareUsage[]> | null = null;

  constructor(store: UsageTotals) {
    this.#store = store;
  }

  record(scope: string, entity: string, usage: number): void {
    const key = keyOf(scope, entity);
    const pending = this.#pending.get(key);
    if (pending) pending.usage += usage;
    else this.#pending.set(key, { scope, entity, usage });
  }

  /**
   * Sends what was charged here and returns what the other matchers charged since the last sync
   * (nothing at the first). Calls made while one runs share it. What could not be sent is kept.
   */
  sync(): Promise<ShareUsage[]> {
    this.#syncing ??= this.#exchange().finally(() => {
      this.#syncing = null;
    });
    return this.#syncing;
  }

  async #exchange(): Promise<ShareUsage[]> {
    const sent = this.#pending;
    this.#pending = new Map();
    let totals: ShareUsage[];
    try {
      totals = await this.#store.addShareUsage([...sent.values()]);
    } catch (error) {
      for (const delta of sent.values()) this.record(delta.scope, delta.entity, delta.usage);
      throw error;
    }
    const foreign: ShareUsage[] = [];
    for (const total of totals) {
      const key = keyOf(total.scope, total.entity);
      const others = total.usage - (this.#seen.get(key) ?? 0) - (sent.get(key)?.usage ?? 0);
      this.#seen.set(key, total.usage);
      // Sums of floating-point charges: a difference below a thousandth of a core is rounding.
      if (this.#synced && others > 1e-3) foreign.push({ scope: total.scope, entity: total.entity, usage: others });
    }
    this.#synced = true;
    return foreign;
  }
}

/** Scopes are JSON text, which never holds a raw NUL: the pair cannot collide. */
function keyOf(scope: string, entity: string): string {
  return `${scope}\u0000${entity}`;
}

/** The contest among a VO's groups. */
export function groupsScope(vo: string): string {
  return JSON.stringify(['group', vo]);
}

/** The contest among the owners of one group of a VO. */
export function ownersScope(vo: string, group: string): string {
  return JSON.stringify(['owner', vo, group]);
}

export type ParsedScope = { kind: 'group'; vo: string } | { kind: 'owner'; vo: string; group: string };

/** The scope's contest, or null for a scope this version does not know (written by a newer one). */
export function parseScope(scope: string): ParsedScope | null {
  let parts: unknown;
  try {
    parts = JSON.parse(scope);
  } catch {
    return null;
  }
  if (!Array.isArray(parts) || !parts.every((part) => typeof part === 'string')) return null;
  const [kind, vo, group] = parts as string[];
  if (kind === 'group' && vo !== undefined && parts.length === 2) return { kind, vo };
  if (kind === 'owner' && vo !== undefined && group !== undefined && parts.length === 3) return { kind, vo, group };
  return null;
}
