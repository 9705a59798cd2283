/** ClusterPresence on PostgreSQL (see presence.ts): replica beats, pilot → replica rows, advisory locks. */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Clock } from '../../shared/clock.ts';
import { run, withClient, type PgMigration } from '../store/postgres/pg-database.ts';
import { PRESENCE_STALE_MS, type ClusterPresence } from './presence.ts';

export const PG_PRESENCE_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    name: 'matcher replicas and the pilots connected to each',
    sql: `
      CREATE TABLE matcher_replicas (
        id TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        last_beat_at TEXT NOT NULL
      );
      CREATE TABLE pilot_presence (
        pilot_id TEXT PRIMARY KEY,
        replica_id TEXT NOT NULL,
        since TEXT NOT NULL
      );
      CREATE INDEX pilot_presence_by_replica ON pilot_presence (replica_id);
    `,
  },
];

export class PgPresence implements ClusterPresence {
  readonly replicaId = randomUUID();
  readonly #pool: pg.Pool;
  readonly #clock: Clock;
  readonly #staleMs: number;

  private constructor(pool: pg.Pool, clock: Clock, staleMs: number) {
    this.#pool = pool;
    this.#clock = clock;
    this.#staleMs = staleMs;
  }

  static async start(pool: pg.Pool, clock: Clock, staleMs = PRESENCE_STALE_MS): Promise<PgPresence> {
    const presence = new PgPresence(pool, clock, staleMs);
    const now = presence.#now();
    await run(() =>
      pool.query('INSERT INTO matcher_replicas (id, started_at, last_beat_at) VALUES ($1, $2, $2)', [
        presence.replicaId,
        now,
      ]),
    );
    // Replicas silent for long are forgotten, with their pilots.
    const long = new Date(clock.nowMs() - 10 * staleMs).toISOString();
    await run(() =>
      pool.query(
        'DELETE FROM pilot_presence WHERE replica_id IN (SELECT id FROM matcher_replicas WHERE last_beat_at < $1)',
        [long],
      ),
    );
    await run(() => pool.query('DELETE FROM matcher_replicas WHERE last_beat_at < $1', [long]));
    return presence;
  }

  #now(): string {
    return new Date(this.#clock.nowMs()).toISOString();
  }

  async pilotArrived(pilotId: string): Promise<void> {
    await run(() =>
      this.#pool.query(
        `INSERT INTO pilot_presence (pilot_id, replica_id, since) VALUES ($1, $2, $3)
         ON CONFLICT (pilot_id) DO UPDATE SET replica_id = excluded.replica_id, since = excluded.since`,
        [pilotId, this.replicaId, this.#now()],
      ),
    );
  }

  async pilotLeft(pilotId: string): Promise<void> {
    // Only its own row: the pilot may already have reconnected to another replica.
    await run(() =>
      this.#pool.query('DELETE FROM pilot_presence WHERE pilot_id = $1 AND replica_id = $2', [pilotId, this.replicaId]),
    );
  }

  async pilotConnected(pilotId: string): Promise<boolean> {
    const fresh = new Date(this.#clock.nowMs() - this.#staleMs).toISOString();
    const rows = await run(() =>
      this.#pool.query(
        `SELECT 1 FROM pilot_presence p JOIN matcher_replicas r ON r.id = p.replica_id
         WHERE p.pilot_id = $1 AND r.last_beat_at >= $2`,
        [pilotId, fresh],
      ),
    );
    return rows.rows.length > 0;
  }

  async runExclusive(chore: string, work: () => Promise<void>): Promise<boolean> {
    return withClient(this.#pool, async (client) => {
      const got = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS locked', [
        `pilothouse:${chore}`,
      ]);
      if (!got.rows[0]?.locked) return false;
      try {
        await work();
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtext($1))', [`pilothouse:${chore}`]);
      }
      return true;
    });
  }

  async beat(): Promise<void> {
    await run(() =>
      this.#pool.query('UPDATE matcher_replicas SET last_beat_at = $2 WHERE id = $1', [this.replicaId, this.#now()]),
    );
  }

  async close(): Promise<void> {
    await run(() => this.#pool.query('DELETE FROM pilot_presence WHERE replica_id = $1', [this.replicaId])).catch(
      () => undefined,
    );
    await run(() => this.#pool.query('DELETE FROM matcher_replicas WHERE id = $1', [this.replicaId])).catch(
      () => undefined,
    );
  }
}
