/**
 * The idempotency key of a job status report: the same report replayed (after a reconnect, or sent
 * over both the WebSocket and the HTTP fallback) is recorded once.
 */
export interface ReportKeyFields {
  at: string;
  status?: string | undefined;
  minorStatus?: string | undefined;
  applicationStatus?: string | undefined;
  exitCode?: number | undefined;
}

export function statusReportKey(report: ReportKeyFields): string {
  return [
    report.at,
    report.status ?? '',
    report.minorStatus ?? '',
    report.applicationStatus ?? '',
    report.exitCode ?? '',
  ].join('|');
}
