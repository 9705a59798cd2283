/**
 * What one matcher tells the others that share its database, so that replicas behave as one: jobs
 * that became waiting (wake your parked pilots), commands queued for a pilot (deliver them if it is
 * connected to you), drains, revoked credentials, a changed site mask. On SQLite there is one matcher
 * and nothing to tell (`LocalBus`); on PostgreSQL the events travel by LISTEN/NOTIFY (`PgBus`).
 * A replica never acts on its own events: the caller has already done the local part.
 */
export type ClusterEvent =
  | { type: 'jobs-waiting'; taskQueueIds: number[] }
  | { type: 'commands'; pilotId: string; jobId: number; attempt: number }
  | { type: 'drain'; pilotId: string; reason: string }
  | { type: 'credentials-changed' }
  | { type: 'site-mask-changed' }
  | { type: 'policy-changed' }
  /** The bus lost events (its connection dropped): assume anything may have changed. */
  | { type: 'resync' };

export interface ClusterBus {
  publish(event: ClusterEvent): Promise<void>;
  subscribe(handler: (event: ClusterEvent) => void): void;
  close(): Promise<void>;
}

export class LocalBus implements ClusterBus {
  async publish(): Promise<void> {}
  subscribe(): void {}
  async close(): Promise<void> {}
}
