/**
 * The matches sent on one pilot connection, until a heartbeat says whether the pilot holds them.
 *
 * Match frames are numbered per connection (`matchSeq`), and a heartbeat says up to which number the
 * pilot had received when it listed the attempts it holds. A match at or below that number that the
 * list leaves out reached the pilot and was lost there (a pilot bug, a crash of its job start): the
 * job would otherwise sit Matched to a live pilot until the matched timeout (two hours). A match
 * above that number was still on its way and waits for a later heartbeat. Each match is judged by
 * the first heartbeat that covers it and then forgotten; a pilot that never says `matchSeq` (an
 * older pilot) is never judged, and only the latest matches are kept for it.
 */
import { attemptKey } from '../../shared/job/attempt-key.ts';

export interface SentMatch {
  jobId: number;
  attempt: number;
}

/** Matches kept unjudged at most (a pilot that never vouches for its list): the oldest go first. */
const MAX_UNJUDGED = 1_000;

export class SentMatches {
  /** By `jobId:attempt`, in the order sent. */
  readonly #unjudged = new Map<string, SentMatch & { matchSeq: number }>();

  sent(jobId: number, attempt: number, matchSeq: number): void {
    this.#unjudged.set(attemptKey(jobId, attempt), { jobId, attempt, matchSeq });
    if (this.#unjudged.size > MAX_UNJUDGED) {
      const oldest = this.#unjudged.keys().next().value as string;
      this.#unjudged.delete(oldest);
    }
  }

  /**
   * A heartbeat that had received the matches up to `matchSeq` and holds `holding`: the matches it
   * covers that it does not hold. Every match it covers is forgotten.
   */
  judge(matchSeq: number, holding: readonly SentMatch[]): SentMatch[] {
    const held = new Set(holding.map((job) => attemptKey(job.jobId, job.attempt)));
    const lost: SentMatch[] = [];
    for (const [key, match] of this.#unjudged) {
      if (match.matchSeq > matchSeq) continue;
      this.#unjudged.delete(key);
      if (!held.has(key)) lost.push({ jobId: match.jobId, attempt: match.attempt });
    }
    return lost;
  }

  get size(): number {
    return this.#unjudged.size;
  }
}
