/** Runs a site director's cycles until the state the test waits for is reached (bounded). */
import assert from 'node:assert/strict';
import type { DirectorReport } from '../../shared/protocol/site-director.ts';
import type { SiteDirector } from '../../site-director/director.ts';

export async function cyclesUntil(
  director: SiteDirector,
  what: string,
  condition: (report: DirectorReport) => boolean | Promise<boolean>,
  options: { timeoutMs?: number; pauseMs?: number } = {},
): Promise<DirectorReport[]> {
  const reports: DirectorReport[] = [];
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  for (;;) {
    const report = await director.runCycle();
    reports.push(report);
    if (await condition(report)) return reports;
    assert.ok(
      Date.now() < deadline,
      `timed out waiting for ${what}; last cycle: ${JSON.stringify(report.queues.map((q) => [q.ce, q.queue, q.submitted, q.reason]))}`,
    );
    await new Promise((resolve) => setTimeout(resolve, options.pauseMs ?? 1000));
  }
}
