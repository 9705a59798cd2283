/**
 * Jobs submitted over REST the way the benchmarks time them, and the submit → match latency of a
 * fleet of parked simulated pilots. Requests go through undici on one kept-alive connection: the
 * client's own overhead stays small (fetch adds about a millisecond per call here), as BullMQ's add
 * on its open Redis connection.
 */
import { Pool } from 'undici';
import type { OfferResources } from '../../shared/protocol/messages.ts';
import type { SimPilot } from './sim-pilot.ts';

export class JobSubmitter {
  readonly #client: Pool;
  readonly #token: string;

  constructor(url: string, token: string) {
    this.#client = new Pool(url, { connections: 1, pipelining: 1 });
    this.#token = token;
  }

  /** One description or an array of them, in one request; throws unless all were stored. */
  async submit(jobs: unknown): Promise<void> {
    const response = await this.#client.request({
      path: '/api/jobs',
      method: 'POST',
      headers: { authorization: `Bearer ${this.#token}`, 'content-type': 'application/json' },
      body: JSON.stringify(jobs),
    });
    const text = await response.body.text();
    if (response.statusCode !== 201) throw new Error(`submission: ${response.statusCode} ${text}`);
  }

  close(): Promise<void> {
    return this.#client.close();
  }
}

/**
 * With every pilot parked on an offer of `resources`: one job at a time, timed from the submission to
 * the match reaching whichever pilot the matcher picked, which then runs it (Running, Done) and parks
 * again. Milliseconds, one per sample.
 */
export async function submitToMatchLatencies(
  submitter: JobSubmitter,
  pilots: readonly SimPilot[],
  resources: OfferResources,
  samples: number,
): Promise<number[]> {
  const latencyMs: number[] = [];
  for (let i = 0; i < samples; i += 1) {
    const matched = Promise.race(pilots.map((pilot) => pilot.next().then((message) => ({ pilot, message }))));
    const started = performance.now();
    await submitter.submit({ executable: '/bin/true' });
    const { pilot, message } = await matched;
    latencyMs.push(performance.now() - started);
    if (message.type !== 'match') throw new Error(`expected a match, got ${message.type}`);
    const { jobId, attempt } = message.job;
    void pilot.report(jobId, attempt, { status: 'Running' });
    await pilot.report(jobId, attempt, { status: 'Done', exitCode: 0 });
    const parked = await pilot.offer(resources);
    if (parked.type !== 'parked') throw new Error(`expected the matched pilot to park again, got ${parked.type}`);
  }
  return latencyMs;
}
