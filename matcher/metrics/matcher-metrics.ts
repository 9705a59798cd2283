/**
 * The matcher's Prometheus metrics (prom-client, so the text format and its escaping are a
 * maintained library's job). Events are counted where they happen (HTTP answers, WebSocket frames,
 * matches, store commits); levels (jobs by status and VO, task queues, parked offers, connected
 * pilots) are read from their sources when scraped. Job counts need a GROUP BY over the jobs table,
 * so they are cached for `jobCountsTtlMs` (a scrape every 15 s does not re-count a million jobs).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobCount, TaskQueueView } from '../store/job-store.ts';

export interface MetricsSources {
  /** Jobs grouped by status and VO (a store summary). */
  jobCounts(): Promise<JobCount[]>;
  taskQueues(): Promise<TaskQueueView[]>;
  parkedOffers(): number;
  connectedPilots(): number;
}

export const DEFAULT_JOB_COUNTS_TTL_MS = 15_000;

/** Seconds: from a fast SQLite group commit (~1 ms) to a slow PostgreSQL round trip. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class MatcherMetrics {
  readonly registry = new Registry();
  readonly #httpRequests: Counter<'method' | 'route' | 'code'>;
  readonly #httpSeconds: Histogram<'method' | 'route'>;
  readonly #frames: Counter<'direction'>;
  readonly #matchSeconds: Histogram<'outcome'>;
  readonly #commitSeconds: Histogram;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'pilothouse_process_' });
    // prom-client names these gauges *_total, which Prometheus reserves for counters (promtool says
    // so); the same figures are there without the suffix.
    for (const name of ['active_handles', 'active_requests', 'active_resources']) {
      this.registry.removeSingleMetric(`pilothouse_process_nodejs_${name}_total`);
    }
    this.#httpRequests = new Counter({
      name: 'pilothouse_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status code',
      labelNames: ['method', 'route', 'code'],
      registers,
    });
    this.#httpSeconds = new Histogram({
      name: 'pilothouse_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by method and route pattern',
      labelNames: ['method', 'route'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#frames = new Counter({
      name: 'pilothouse_websocket_frames_total',
      help: 'WebSocket frames on pilot connections: in (from pilots) and out (to pilots)',
      labelNames: ['direction'],
      registers,
    });
    this.#matchSeconds = new Histogram({
      name: 'pilothouse_match_duration_seconds',
      help: "Time to look for a job for a pilot's offer (claim included), by outcome: matched or none",
      labelNames: ['outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#commitSeconds = new Histogram({
      name: 'pilothouse_store_commit_duration_seconds',
      help: 'Time of a store write transaction, commit included',
      buckets: LATENCY_BUCKETS,
      registers,
    });
  }

  httpAnswered(method: string, route: string, code: number, seconds: number): void {
    this.#httpRequests.inc({ method, route, code: String(code) });
    this.#httpSeconds.observe({ method, route }, seconds);
  }

  frameIn(): void {
    this.#frames.inc({ direction: 'in' });
  }

  frameOut(): void {
    this.#frames.inc({ direction: 'out' });
  }

  /** A match attempt for an offer ended: `matched` when it found a job. */
  matchTried(matched: boolean, seconds: number): void {
    this.#matchSeconds.observe({ outcome: matched ? 'matched' : 'none' }, seconds);
  }

  committed(seconds: number): void {
    this.#commitSeconds.observe(seconds);
  }

  /** Registers the levels read at scrape time. */
  attachSources(sources: MetricsSources, jobCountsTtlMs = DEFAULT_JOB_COUNTS_TTL_MS): void {
    const registers = [this.registry];
    let cached: { at: number; counts: Promise<JobCount[]> } | null = null;
    const jobCounts = (): Promise<JobCount[]> => {
      if (cached === null || performance.now() - cached.at >= jobCountsTtlMs) {
        cached = { at: performance.now(), counts: sources.jobCounts() };
        cached.counts.catch(() => {
          cached = null;
        });
      }
      return cached.counts;
    };
    new Gauge({
      name: 'pilothouse_jobs',
      help: `Jobs in the store by status and VO (counted at most every ${jobCountsTtlMs / 1000} s)`,
      labelNames: ['status', 'vo'],
      registers,
      async collect() {
        this.reset();
        for (const group of await jobCounts()) {
          this.set({ status: String(group.values.status), vo: String(group.values.vo) }, group.count);
        }
      },
    });
    const perVo = async (pick: (tq: TaskQueueView) => number): Promise<Map<string, number>> => {
      const totals = new Map<string, number>();
      for (const tq of await sources.taskQueues()) totals.set(tq.vo, (totals.get(tq.vo) ?? 0) + pick(tq));
      return totals;
    };
    new Gauge({
      name: 'pilothouse_task_queues',
      help: 'Task queues with waiting jobs, by VO',
      labelNames: ['vo'],
      registers,
      async collect() {
        this.reset();
        for (const [vo, count] of await perVo(() => 1)) this.set({ vo }, count);
      },
    });
    new Gauge({
      name: 'pilothouse_task_queue_waiting_jobs',
      help: 'Jobs waiting in task queues, by VO',
      labelNames: ['vo'],
      registers,
      async collect() {
        this.reset();
        for (const [vo, count] of await perVo((tq) => tq.waitingJobs)) this.set({ vo }, count);
      },
    });
    new Gauge({
      name: 'pilothouse_parked_offers',
      help: 'Pilot offers parked on this matcher, waiting for a job that fits',
      registers,
      collect() {
        this.set(sources.parkedOffers());
      },
    });
    new Gauge({
      name: 'pilothouse_connected_pilots',
      help: 'Pilots connected to this matcher',
      registers,
      collect() {
        this.set(sources.connectedPilots());
      },
    });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
