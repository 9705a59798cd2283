/**
 * The cluster bus on PostgreSQL LISTEN/NOTIFY. One dedicated connection listens on a channel named
 * after the schema (replicas of different deployments in one database do not hear each other);
 * notifications go out through the store's pool. A payload is JSON `{from, event}`; events from this
 * replica are ignored, and a list too long for one notification (8000 bytes) is split. When the
 * listening connection drops, it is re-established with backoff and subscribers get a `resync`
 * (notifications sent meanwhile are lost).
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { backoffDelayMs } from '../../shared/backoff.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ClusterBus, ClusterEvent } from './cluster-bus.ts';

const MAX_PAYLOAD_BYTES = 7900;
const MAX_IDS_PER_EVENT = 500;

export interface PgBusOptions {
  url: string;
  schema: string | undefined;
  /** Where notifications are sent from (the stores' pool). */
  pool: pg.Pool;
  logger: Logger;
}

export class PgBus implements ClusterBus {
  readonly #id = randomUUID();
  readonly #channel: string;
  readonly #options: PgBusOptions;
  readonly #handlers: ((event: ClusterEvent) => void)[] = [];
  #client: pg.Client | null = null;
  #closed = false;
  #reconnects = 0;

  private constructor(options: PgBusOptions) {
    this.#options = options;
    this.#channel = `pilothouse_events_${options.schema ?? 'public'}`;
  }

  static async start(options: PgBusOptions): Promise<PgBus> {
    const bus = new PgBus(options);
    await bus.#listen();
    return bus;
  }

  async #listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#options.url });
    client.on('notification', (message) => this.#receive(message.payload));
    client.on('error', (error) => {
      this.#options.logger.warn({ err: error.message }, 'cluster bus connection lost');
      void this.#reconnect(client);
    });
    client.on('end', () => void this.#reconnect(client));
    await client.connect();
    await client.query(`LISTEN ${this.#channel}`);
    this.#client = client;
    this.#reconnects = 0;
  }

  async #reconnect(lost: pg.Client): Promise<void> {
    if (this.#closed || this.#client !== lost) return;
    this.#client = null;
    lost.removeAllListeners('end');
    for (;;) {
      if (this.#closed) return;
      await new Promise((resolve) =>
        setTimeout(
          resolve,
          backoffDelayMs(this.#reconnects++, { initialDelayMs: 200, maxDelayMs: 10_000, jitter: 0.5 }),
        ),
      );
      try {
        await this.#listen();
        this.#options.logger.info('cluster bus listening again');
        this.#deliver({ type: 'resync' });
        return;
      } catch (error) {
        this.#options.logger.warn({ err: (error as Error).message }, 'cluster bus reconnect failed');
      }
    }
  }

  #receive(payload: string | undefined): void {
    if (payload === undefined) return;
    let message: { from?: unknown; event?: ClusterEvent };
    try {
      message = JSON.parse(payload) as typeof message;
    } catch {
      return;
    }
    if (message.from === this.#id || typeof message.event?.type !== 'string') return;
    this.#deliver(message.event);
  }

  #deliver(event: ClusterEvent): void {
    for (const handler of this.#handlers) {
      try {
        handler(event);
      } catch (error) {
        this.#options.logger.error({ err: error }, 'cluster event handler failed');
      }
    }
  }

  async publish(event: ClusterEvent): Promise<void> {
    const events: ClusterEvent[] =
      event.type === 'jobs-waiting' && event.taskQueueIds.length > MAX_IDS_PER_EVENT
        ? chunk(event.taskQueueIds, MAX_IDS_PER_EVENT).map((taskQueueIds) => ({ type: 'jobs-waiting', taskQueueIds }))
        : [event];
    for (const one of events) {
      const payload = JSON.stringify({ from: this.#id, event: one });
      if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) continue; // a drain reason that long: the reconnect path covers it
      try {
        await this.#options.pool.query('SELECT pg_notify($1, $2)', [this.#channel, payload]);
      } catch (error) {
        // Other replicas catch up at their next refresh: an event lost is a delay, never a wrong answer.
        this.#options.logger.warn({ err: (error as Error).message, event: one.type }, 'cluster event not sent');
      }
    }
  }

  subscribe(handler: (event: ClusterEvent) => void): void {
    this.#handlers.push(handler);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client;
    this.#client = null;
    if (client) {
      client.removeAllListeners('end');
      client.removeAllListeners('error');
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
    }
  }
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}
