/**
 * The pilot store: one record per pilot, joining what the site director says (registered at
 * submission, then the batch system's view of it) with what the pilot says itself (hello, bye, its
 * WebSocket). Status changes follow `mergePilotStatus` (shared/pilot/status.ts) and every applied
 * change is kept in the pilot's history with its source. Pilots started by hand (no director) have a
 * record from their hello on. Implemented for SQLite; test/conformance/pilot-store.suite.ts runs
 * against every implementation.
 */
import type { NodeInfo } from '../../shared/protocol/messages.ts';
import type { PilotReportSource, PilotStatus } from '../../shared/pilot/status.ts';
import type {
  BackendType,
  DirectorReport,
  PilotCounts,
  PilotOutput,
  PilotRegistration,
  PilotStatusUpdate,
} from '../../shared/protocol/site-director.ts';

export interface PilotRecord {
  /** The pilot's stamp. */
  id: string;
  vo: string;
  site: string;
  ce: string | null;
  queue: string | null;
  status: PilotStatus;
  statusReason: string;
  statusAt: string | null;
  /** When the record was made: submission, or the first hello of a pilot started by hand. */
  createdAt: string;
  node: NodeInfo | null;
  pilotVersion: string | null;
  connectedAt: string | null;
  lastSeenAt: string | null;
  /** A WebSocket session of this pilot is open now. */
  connected: boolean;
  jobsMatched: number;
  /** Null for pilots started by hand. */
  director: string | null;
  backend: BackendType | null;
  backendRef: string | null;
  submittedAt: string | null;
  /** The batch system's last word (native state). */
  backendStatus: string | null;
  exitCode: number | null;
  /** The director still follows it (its final status or output is not in yet). */
  tracked: boolean;
  hasOutput: boolean;
}

export interface PilotHistoryEntry {
  at: string;
  status: PilotStatus;
  reason: string;
  source: PilotReportSource | 'director';
  /** The batch system's own state, for backend reports. */
  native: string | null;
}

export interface PilotHelloRecord {
  id: string;
  vo: string;
  site: string;
  ce: string | null;
  queue: string | null;
  node: NodeInfo;
  pilotVersion: string;
  at: string;
}

export const SORTABLE_PILOT_FIELDS = ['createdAt', 'statusAt', 'id'] as const;
export type SortablePilotField = (typeof SORTABLE_PILOT_FIELDS)[number];

export interface PilotQuery {
  ids?: string[];
  vos?: string[];
  sites?: string[];
  ces?: string[];
  queues?: string[];
  statuses?: PilotStatus[];
  directors?: string[];
  tracked?: boolean;
  /** Records made at or after / before these times (ISO). */
  createdAfter?: string;
  createdBefore?: string;
  sort: { field: SortablePilotField; direction: 'asc' | 'desc' };
  page: number;
  perPage: number;
}

export interface PilotPage {
  total: number;
  pilots: PilotRecord[];
}

export interface QueueKey {
  vo: string;
  site: string;
  ce: string;
  queue: string;
}

export interface RegisterOutcome {
  registered: number;
  /** Already registered with the same facts (a retried request): nothing changed. */
  alreadyRegistered: number;
  /** Stamps that belong to another pilot (different VO, place or backend reference). */
  conflicts: string[];
}

export interface UpdateOutcome {
  /** Stamps whose recorded status (or tracking) changed. */
  applied: string[];
  /** Stamps whose report changed nothing (stale, or the same as before). */
  unchanged: string[];
  /** Stamps the store does not know. */
  unknown: string[];
}

export interface StoredPilotOutput extends PilotOutput {
  fetchedAt: string;
}

export interface StoredDirectorReport {
  report: DirectorReport;
  receivedAt: string;
}

export interface PilotStore {
  registerPilots(director: string, pilots: readonly PilotRegistration[], at: string): Promise<RegisterOutcome>;
  recordHello(hello: PilotHelloRecord): Promise<void>;
  recordBye(id: string, reason: string, at: string): Promise<void>;
  recordDisconnect(id: string, at: string): Promise<void>;
  applyBackendUpdates(updates: readonly PilotStatusUpdate[]): Promise<UpdateOutcome>;
  getPilot(id: string): Promise<PilotRecord | null>;
  getHistory(id: string): Promise<PilotHistoryEntry[]>;
  searchPilots(query: PilotQuery): Promise<PilotPage>;
  /** Pilots not yet ended per queue and VO (one query for all the keys asked). */
  countActive(keys: readonly QueueKey[]): Promise<Map<string, PilotCounts>>;
  storeOutput(id: string, output: PilotOutput, at: string): Promise<boolean>;
  getOutput(id: string): Promise<StoredPilotOutput | null>;
  saveDirectorReport(report: DirectorReport, at: string): Promise<void>;
  directorReports(): Promise<StoredDirectorReport[]>;
  close(): Promise<void>;
}

/** The map key of countActive. */
export function queueKeyOf(key: QueueKey): string {
  return [key.vo, key.site, key.ce, key.queue].join('\u0000');
}
