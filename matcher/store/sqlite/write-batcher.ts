/**
 * Group commit for SQLite. Writes requested during one turn of the event loop (the claims and reports
 * of every pilot frame that arrived together) run in ONE `BEGIN IMMEDIATE` transaction. A commit appends
 * every dirty page to the WAL, so sharing it cuts the cost of a claim by half or more under load. If any
 * write of the group throws, the group is rolled back and every write is retried alone, so one failing
 * write (a stale attempt, say) fails only itself, each caller gets its own result, and no write is ever
 * seen half-done.
 *
 * A hold (from the WAL checkpointer) keeps writes queued, not run, until it is released: with no
 * writer for a moment the checkpointer can catch up with the whole WAL, so SQLite starts it afresh.
 */
import type Database from 'better-sqlite3';

interface PendingWrite {
  run(): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export class WriteBatcher {
  readonly #db: Database.Database;
  readonly #onCommit: (seconds: number) => void;
  #pending: PendingWrite[] = [];
  #scheduled = false;
  #held = false;

  /** `onCommit` is told how long each group's transaction took, commit included (for /metrics). */
  constructor(db: Database.Database, onCommit: (seconds: number) => void = () => {}) {
    this.#db = db;
    this.#onCommit = onCommit;
  }

  /** Runs `write` inside the next group transaction; resolves with its result. */
  write<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ run: write, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Queued writes wait (they are not lost) until release(). */
  hold(): void {
    this.#held = true;
  }

  release(): void {
    if (!this.#held) return;
    this.#held = false;
    if (this.#pending.length > 0 && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#held) return; // release() schedules the flush
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    let results: unknown[];
    const started = performance.now();
    try {
      // Fast path: every write of the batch in one transaction, no savepoints.
      results = this.#db.transaction(() => batch.map((pending) => pending.run())).immediate();
      this.#onCommit((performance.now() - started) / 1000);
    } catch {
      // Some write threw (a stale attempt, an unknown job...): the whole group rolled back, so each
      // write is run again in a transaction of its own, and only the failing ones fail.
      for (const pending of batch) {
        try {
          pending.resolve(this.#db.transaction(pending.run).immediate());
        } catch (error) {
          pending.reject(error);
        }
      }
      return;
    }
    batch.forEach((pending, index) => pending.resolve(results[index]));
  }

  /** Runs what is queued now, hold or not (before closing the database). */
  flushNow(): void {
    this.#held = false;
    this.#flush();
  }
}
