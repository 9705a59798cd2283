/**
 * Fair share by stride scheduling: each entity (a group, or an owner inside a group) advances a
 * virtual "pass" by usage / weight whenever it is served, and the entity with the lowest pass goes
 * next. Among entities that keep having work, usage converges to the ratio of their weights; an
 * entity that was idle is brought up to the current floor when it returns, so it cannot bank credit
 * and then starve the others (and nobody starves: every entity's pass eventually becomes the lowest).
 */
export class FairShare {
  readonly #pass = new Map<string, number>();
  #floor = 0;

  /** The entity to serve next among `keys` (ties: the first in the given order). */
  pick(keys: readonly string[]): string | undefined {
    let best: string | undefined;
    let bestPass = Infinity;
    for (const key of keys) {
      const pass = Math.max(this.#pass.get(key) ?? this.#floor, this.#floor);
      if (pass < bestPass) {
        best = key;
        bestPass = pass;
      }
    }
    if (best !== undefined) this.#floor = bestPass;
    return best;
  }

  /** `keys` in the order they would be served now, without serving any (ties keep the given order). */
  order(keys: readonly string[]): string[] {
    const passOf = (key: string): number => Math.max(this.#pass.get(key) ?? this.#floor, this.#floor);
    return keys
      .map((key, index) => ({ key, index, pass: passOf(key) }))
      .sort((a, b) => a.pass - b.pass || a.index - b.index)
      .map((entry) => entry.key);
  }

  /** Records that `key` was given `usage` (e.g. cores) under its `weight` (share). */
  charge(key: string, weight: number, usage: number): void {
    const pass = Math.max(this.#pass.get(key) ?? this.#floor, this.#floor);
    this.#pass.set(key, pass + usage / weight);
  }
}
