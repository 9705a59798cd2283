/**
 * How queued status reports leave in frames: the reports about one attempt go together, oldest
 * first (the last one is the frame's own, the others its `earlier`), so that a short job's Running
 * ... Done costs the matcher one frame and one write. A frame holds at most MAX_EARLIER_REPORTS + 1
 * reports and about `maxChars` of JSON, far below the matcher's frame limit whatever the output tails.
 * The groups of several attempts (jobs that ended together) then share frames, MAX_ATTEMPTS_PER_REPORT_FRAME
 * attempts and about `maxChars` at most each, so that the matcher stores them in one write and acks once.
 */
import { MAX_ATTEMPTS_PER_REPORT_FRAME, MAX_EARLIER_REPORTS } from '../shared/protocol/messages.ts';
import { attemptKey } from '../shared/job/attempt-key.ts';

export interface AttemptReport {
  jobId: number;
  attempt: number;
}

/** Splits `reports` (in the order they were made) into frames; each attempt's order is kept. */
export function groupReportsIntoFrames<T extends { body: AttemptReport }>(
  reports: readonly T[],
  maxChars: number,
): T[][] {
  const openFrame = new Map<string, { reports: T[]; chars: number }>();
  const frames: T[][] = [];
  for (const report of reports) {
    const key = attemptKey(report.body.jobId, report.body.attempt);
    const chars = JSON.stringify(report.body).length;
    const open = openFrame.get(key);
    if (open && open.reports.length <= MAX_EARLIER_REPORTS && open.chars + chars <= maxChars) {
      open.reports.push(report);
      open.chars += chars;
      continue;
    }
    const frame = { reports: [report], chars };
    frames.push(frame.reports);
    openFrame.set(key, frame);
  }
  return frames;
}

/** Packs per-attempt groups (from groupReportsIntoFrames) into frames of several attempts, in order. */
export function packAttemptsIntoFrames<T extends { body: AttemptReport }>(
  groups: readonly T[][],
  maxChars: number,
): T[][][] {
  const frames: T[][][] = [];
  let open: { groups: T[][]; chars: number } | null = null;
  for (const group of groups) {
    const chars = group.reduce((sum, report) => sum + JSON.stringify(report.body).length, 0);
    if (open !== null && open.groups.length < MAX_ATTEMPTS_PER_REPORT_FRAME && open.chars + chars <= maxChars) {
      open.groups.push(group);
      open.chars += chars;
      continue;
    }
    open = { groups: [group], chars };
    frames.push(open.groups);
  }
  return frames;
}
