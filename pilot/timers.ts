/**
 * Named one-shot and repeating timers that can be cleared by name or all at once, so a component
 * with several timers (retry, idle, cancel...) stops them all on shutdown and never leaks one.
 */
export class NamedTimers<Name extends string> {
  readonly #timers = new Map<Name, NodeJS.Timeout>();

  /** (Re)starts `name`: fires `callback` once after `delayMs`. */
  once(name: Name, delayMs: number, callback: () => void): void {
    this.clear(name);
    this.#timers.set(
      name,
      setTimeout(
        () => {
          this.#timers.delete(name);
          callback();
        },
        Math.max(0, delayMs),
      ),
    );
  }

  /** (Re)starts `name`: fires `callback` every `intervalMs` until cleared. */
  every(name: Name, intervalMs: number, callback: () => void): void {
    this.clear(name);
    this.#timers.set(name, setInterval(callback, intervalMs));
  }

  has(name: Name): boolean {
    return this.#timers.has(name);
  }

  clear(name: Name): void {
    const timer = this.#timers.get(name);
    if (timer === undefined) return;
    clearTimeout(timer); // clears intervals too
    this.#timers.delete(name);
  }

  clearAll(): void {
    for (const name of [...this.#timers.keys()]) this.clear(name);
  }
}
