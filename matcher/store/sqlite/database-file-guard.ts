/**
 * Watches that the SQLite file a matcher has open is still the one at its path. Removed, or replaced
 * by another file (a backup copied over it, a mistaken `rm`), the process would go on writing into a
 * file nobody will ever open again, and every job submitted from then on would vanish at the next
 * start. So the guard looks every `intervalMs` (a stat), and when the file is no longer the one open
 * calls `onLost`: the stores then refuse writes (STORE_UNAVAILABLE) and /healthz says so. The file put
 * back where it was (renamed back: the same inode) calls `onRestored` and writes resume; a copy is
 * another file, and needs a restart of the matcher.
 */
import { statSync } from 'node:fs';

export type LostReason = 'removed' | 'replaced';

export interface DatabaseFileGuardOptions {
  path: string;
  intervalMs: number;
  onLost(reason: LostReason): void;
  onRestored(): void;
}

export class DatabaseFileGuard {
  readonly #options: DatabaseFileGuardOptions;
  readonly #identity: string;
  readonly #timer: NodeJS.Timeout;
  #lost: LostReason | null = null;

  constructor(options: DatabaseFileGuardOptions) {
    this.#options = options;
    this.#identity = identityOf(options.path) ?? '';
    this.#timer = setInterval(() => this.check(), options.intervalMs);
    this.#timer.unref();
  }

  /** Why the file is lost, or null while it is still the one opened. */
  get lost(): LostReason | null {
    return this.#lost;
  }

  check(): LostReason | null {
    const now = identityOf(this.#options.path);
    const lost: LostReason | null = now === this.#identity ? null : now === null ? 'removed' : 'replaced';
    if (lost !== this.#lost) {
      const was = this.#lost;
      this.#lost = lost;
      if (lost === null) this.#options.onRestored();
      else if (was === null) this.#options.onLost(lost);
    }
    return lost;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Device and inode of the file at a path; null when nothing is there. */
function identityOf(file: string): string | null {
  try {
    const stat = statSync(file, { bigint: true });
    return `${stat.dev}:${stat.ino}`;
  } catch {
    return null;
  }
}
