/**
 * Pilot statuses, as DIRAC's PilotAgentsDB names them, plus `Lost`: a pilot its computing element no
 * longer knows about for longer than the site director's patience. Two sources speak about a pilot:
 * the **backend** (the batch system, as the site director polls it) and the **pilot** itself (hello,
 * bye, its WebSocket). `mergePilotStatus` decides what a new report does to the recorded status:
 *
 *  - status only moves forward: Submitted → Waiting → Running → a final status. A batch system that
 *    still says "pending" after the pilot said hello lags behind; that report is not applied;
 *  - the pilot's own hello makes it Running, its bye makes it Done, unless a final status is known;
 *  - the backend's final word wins over the pilot's bye: a pilot that said bye and then ended with a
 *    non-zero exit code (or was killed for memory) is Failed, with the batch system's reason;
 *  - `Unknown` (the backend cannot find the job) never overrides a pilot that is connected now, and
 *    `Lost` is final but gives way to any later real news (the pilot says hello, the backend finds it).
 */
export const PILOT_STATUSES = [
  'Submitted',
  'Waiting',
  'Running',
  'Done',
  'Failed',
  'Aborted',
  'Unknown',
  'Lost',
] as const;
export type PilotStatus = (typeof PILOT_STATUSES)[number];

/** Statuses after which the pilot runs no more. */
export const FINAL_PILOT_STATUSES: ReadonlySet<PilotStatus> = new Set(['Done', 'Failed', 'Aborted', 'Lost']);
/** Submitted to the batch system and not started yet (what caps on waiting pilots count). */
export const WAITING_PILOT_STATUSES: ReadonlySet<PilotStatus> = new Set(['Submitted', 'Waiting']);

export type PilotReportSource = 'backend' | 'pilot';

export interface RecordedPilotStatus {
  status: PilotStatus;
  /** The pilot has a WebSocket session open right now. */
  connected: boolean;
  /** The backend already gave its final status (only a backend may then change it again, from Lost). */
  backendFinal: boolean;
}

const PROGRESS: Record<PilotStatus, number> = {
  Submitted: 0,
  Waiting: 1,
  Unknown: 1,
  Running: 2,
  Done: 3,
  Failed: 3,
  Aborted: 3,
  Lost: 3,
};

/** True when `incoming` from `source` should replace the recorded status. */
export function mergePilotStatus(
  current: RecordedPilotStatus,
  incoming: PilotStatus,
  source: PilotReportSource,
): boolean {
  if (incoming === current.status) return false;
  if (current.status === 'Lost') return incoming !== 'Unknown';
  if (FINAL_PILOT_STATUSES.has(current.status)) {
    // Only the batch system's verdict refines an end the pilot announced itself (its bye).
    return source === 'backend' && !current.backendFinal && FINAL_PILOT_STATUSES.has(incoming);
  }
  if (incoming === 'Unknown') return source === 'backend' && !current.connected;
  if (incoming === 'Lost') return !current.connected;
  if (current.status === 'Unknown') return true;
  return PROGRESS[incoming] > PROGRESS[current.status];
}

export function isPilotStatus(value: unknown): value is PilotStatus {
  return typeof value === 'string' && (PILOT_STATUSES as readonly string[]).includes(value);
}
