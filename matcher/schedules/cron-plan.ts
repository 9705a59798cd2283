/**
 * A schedule's cron expression compiled once: its slots in its time zone, between its start and end.
 * Croner does the parsing and the next-slot computation (time zones and daylight-saving changes
 * included); this module checks what a user gives and names the field that is wrong.
 *
 * Daylight-saving changes, as croner computes them with the rule Vixie cron follows: a fixed-time
 * slot (no `*` or step in the seconds, minutes and hours fields; lists and ranges are fixed times) that
 * falls in the hour skipped in spring fires once, at the first instant after the gap; one that falls in
 * the hour repeated in autumn fires once, the first time; interval expressions (a `*` or a step in a
 * time field) fire at each of their instants, both passes of the repeated hour included.
 */
import { Cron } from 'croner';
import { PilothouseError } from '../../shared/errors.ts';

/** How many consecutive slots are looked at to find the shortest gap between two. */
const GAP_SAMPLE_SLOTS = 200;

export interface CronPlanInput {
  cron: string;
  timeZone: string;
  startAt?: string | null | undefined;
  endAt?: string | null | undefined;
}

export class CronPlan {
  readonly #cron: Cron;
  readonly #startMs: number | null;
  readonly #endMs: number | null;

  private constructor(cron: Cron, startMs: number | null, endMs: number | null) {
    this.#cron = cron;
    this.#startMs = startMs;
    this.#endMs = endMs;
  }

  /** Throws CRON_INVALID naming `cron` or `timeZone` when either is not usable. */
  static compile(input: CronPlanInput): CronPlan {
    if (!isTimeZone(input.timeZone)) {
      throw new PilothouseError(
        'CRON_INVALID',
        `timeZone: ${JSON.stringify(input.timeZone)} is not an IANA time zone name (e.g. Europe/Paris, UTC)`,
        { field: 'timeZone' },
      );
    }
    const fields = input.cron.trim().split(/\s+/);
    if (fields.length !== 5 && fields.length !== 6) {
      throw new PilothouseError(
        'CRON_INVALID',
        `cron: ${JSON.stringify(input.cron)} has ${fields.length} fields; give 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)`,
        { field: 'cron' },
      );
    }
    let cron: Cron;
    try {
      cron = new Cron(fields.join(' '), {
        timezone: input.timeZone,
        mode: '5-or-6-parts',
        fixedTimeRule: 'no-wildcard',
      });
    } catch (error) {
      const reason = (error as Error).message.replace(/^CronPattern:\s*/, '');
      throw new PilothouseError('CRON_INVALID', `cron: ${JSON.stringify(input.cron)}: ${reason}`, { field: 'cron' });
    }
    const startMs = input.startAt ? Date.parse(input.startAt) : null;
    const endMs = input.endAt ? Date.parse(input.endAt) : null;
    if (startMs !== null && endMs !== null && endMs <= startMs) {
      throw new PilothouseError('VALIDATION_FAILED', 'endAt: must be later than startAt', { field: 'endAt' });
    }
    return new CronPlan(cron, startMs, endMs);
  }

  /** The first slot strictly after `afterMs` (and at or after the start), or null past the end. */
  nextAfter(afterMs: number): number | null {
    const from = this.#startMs !== null && afterMs < this.#startMs ? this.#startMs - 1 : afterMs;
    const next = this.#cron.nextRun(new Date(from));
    if (next === null) return null;
    const ms = next.getTime();
    return this.#endMs !== null && ms >= this.#endMs ? null : ms;
  }

  /** Up to `count` slots strictly after `afterMs`. */
  nextSlots(afterMs: number, count: number): number[] {
    const slots: number[] = [];
    let cursor = afterMs;
    while (slots.length < count) {
      const next = this.nextAfter(cursor);
      if (next === null) break;
      slots.push(next);
      cursor = next;
    }
    return slots;
  }

  /**
   * The slots in (afterMs, untilMs]: how many (counted up to `countAtMost`), the first and the last.
   * The last is found without walking when there are many (after a long downtime).
   */
  slotsBetween(afterMs: number, untilMs: number, countAtMost: number): SlotStretch | null {
    const first = this.nextAfter(afterMs);
    if (first === null || first > untilMs) return null;
    let count = 1;
    let last = first;
    let beforeLast: number | null = null;
    while (count < countAtMost) {
      const next = this.nextAfter(last);
      if (next === null || next > untilMs) {
        return { firstMs: first, lastMs: last, beforeLastMs: beforeLast, count, countIsExact: true };
      }
      beforeLast = last;
      last = next;
      count += 1;
    }
    // Many slots: the last two are the latest slots at or before untilMs.
    const [latest, previous] = this.#cron.previousRuns(2, new Date(untilMs + 1)).map((date) => date.getTime());
    if (latest !== undefined && latest > last && (this.#endMs === null || latest < this.#endMs)) {
      beforeLast = previous !== undefined && previous > last ? previous : last;
      last = latest;
    }
    return { firstMs: first, lastMs: last, beforeLastMs: beforeLast, count, countIsExact: false };
  }

  /** The shortest gap between two consecutive slots among the next ones after `fromMs` (null: fewer than two). */
  shortestGapMs(fromMs: number): number | null {
    const slots = this.nextSlots(fromMs, GAP_SAMPLE_SLOTS);
    let shortest: number | null = null;
    for (let i = 1; i < slots.length; i += 1) {
      const gap = (slots[i] as number) - (slots[i - 1] as number);
      if (shortest === null || gap < shortest) shortest = gap;
    }
    return shortest;
  }
}

export interface SlotStretch {
  firstMs: number;
  lastMs: number;
  /** The slot before the last (null when there is one slot). */
  beforeLastMs: number | null;
  count: number;
  /** False when the walk stopped at `countAtMost`: there were at least `count`. */
  countIsExact: boolean;
}

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return name.length > 0;
  } catch {
    return false;
  }
}
