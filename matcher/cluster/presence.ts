/**
 * Which matcher holds which pilot, and which matcher does a periodic chore, when several share a
 * database. On SQLite there is one matcher: its own registry says who is connected and every chore is
 * its own (`LocalPresence`). On PostgreSQL (`PgPresence`) each replica beats every few seconds and
 * records the pilots connected to it; a pilot counts as connected while its replica's beat is fresh
 * (a replica killed with its pilots leaves no ghost), and a chore such as the fault sweep runs on one
 * replica at a time (an advisory lock).
 */
import { randomUUID } from 'node:crypto';

export interface ClusterPresence {
  /** This process among the replicas (random per start; /healthz tells it). */
  readonly replicaId: string;
  pilotArrived(pilotId: string): Promise<void>;
  pilotLeft(pilotId: string): Promise<void>;
  /** Connected to this or any live replica. */
  pilotConnected(pilotId: string): Promise<boolean>;
  /** Runs the chore unless another replica runs it now; true when it ran here. */
  runExclusive(chore: string, work: () => Promise<void>): Promise<boolean>;
  /** This replica is alive (called every `beatIntervalMs`). */
  beat(): Promise<void>;
  close(): Promise<void>;
}

/** One process: its registry is the truth, and every chore is its own. */
export class LocalPresence implements ClusterPresence {
  readonly replicaId = randomUUID();
  readonly #isConnected: (pilotId: string) => boolean;

  constructor(isConnected: (pilotId: string) => boolean) {
    this.#isConnected = isConnected;
  }

  async pilotArrived(): Promise<void> {}
  async pilotLeft(): Promise<void> {}
  async pilotConnected(pilotId: string): Promise<boolean> {
    return this.#isConnected(pilotId);
  }
  async runExclusive(_chore: string, work: () => Promise<void>): Promise<boolean> {
    await work();
    return true;
  }
  async beat(): Promise<void> {}
  async close(): Promise<void> {}
}

/** A replica beats this often; one silent for `PRESENCE_STALE_MS` is gone with its pilots. */
export const PRESENCE_BEAT_INTERVAL_MS = 5_000;
export const PRESENCE_STALE_MS = 30_000;
