/**
 * A simulated pilot for the benchmarks: a real WebSocket to the matcher speaking the pilot protocol
 * (hello, offers, status reports), resolving each frame it waits for; it never sleeps and stays
 * cheap, so that a benchmark measures the matcher and not its load generator.
 */
import { once } from 'node:events';
import WebSocket from 'ws';
import {
  encodeMessage,
  type MatcherMessage,
  type OfferResources,
  type PilotMessage,
} from '../../shared/protocol/messages.ts';

/** A WebSocket pilot that resolves each frame it waits for; never sleeps. */
export class SimPilot {
  readonly ws: WebSocket;
  #waiter: ((message: MatcherMessage) => void) | null = null;
  #matchSeq = 0;
  #nextRef = 1;
  /** Match frames of one offer that said more are following. */
  #matchesSoFar: MatchMessage[] = [];
  readonly #acks = new Map<number, () => void>();

  constructor(url: string, pilotToken: string) {
    this.ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/pilots/connect`, {
      headers: { authorization: `Bearer ${pilotToken}` },
      perMessageDeflate: false,
    });
    this.ws.on('message', (data) => {
      // Plain JSON.parse: the load generator must stay cheap so that it measures the matcher, not itself.
      const message = JSON.parse(String(data)) as MatcherMessage;
      if (message.type === 'ack') {
        const acked = this.#acks.get(message.ref);
        this.#acks.delete(message.ref);
        acked?.();
        return;
      }
      if (message.type === 'error') {
        process.stderr.write(`[bench] matcher error frame: ${message.code} ${message.message}\n`);
        return;
      }
      if (message.type === 'match') {
        this.#matchSeq = message.matchSeq;
        this.#matchesSoFar.push(message);
        if ((message.following ?? 0) > 0) return;
      }
      const waiter = this.#waiter;
      this.#waiter = null;
      waiter?.(message);
    });
  }

  next(): Promise<MatcherMessage> {
    return new Promise((resolve) => (this.#waiter = resolve));
  }

  async hello(stamp: string, site: string): Promise<void> {
    await once(this.ws, 'open');
    const node = { hostname: stamp, cores: 8, memoryMB: 16_000, os: 'linux', arch: 'x86_64', cpuModel: 'bench' };
    const welcome = this.next();
    this.ws.send(
      encodeMessage({
        type: 'hello',
        pilotStamp: stamp,
        pilotVersion: 'bench',
        site,
        ce: `ce.${site}`,
        queue: 'q',
        node,
      }),
    );
    await welcome;
  }

  offer(resources: OfferResources): Promise<MatcherMessage> {
    const answer = this.next();
    this.ws.send(encodeMessage({ type: 'offer', offerId: `o${this.#matchSeq}`, matchSeq: this.#matchSeq, resources }));
    return answer;
  }

  /** An offer that up to `maxJobs` jobs may fill: every match frame it got, or the other answer. */
  async offerMany(resources: OfferResources, maxJobs: number): Promise<MatchMessage[] | MatcherMessage> {
    this.#matchesSoFar = [];
    const answer = this.next();
    const offerId = `o${this.#matchSeq}`;
    this.ws.send(encodeMessage({ type: 'offer', offerId, matchSeq: this.#matchSeq, resources, maxJobs }));
    const last = await answer;
    return last.type === 'match' ? this.#matchesSoFar : last;
  }

  /** Sends the reports of several attempts in one frame; resolves when the matcher acks it. */
  reportMany(reports: readonly ({ jobId: number; attempt: number } & ReportFields)[]): Promise<void> {
    const ref = this.#nextRef++;
    const acked = new Promise<void>((resolve) => this.#acks.set(ref, resolve));
    const at = new Date().toISOString();
    this.ws.send(encodeMessage({ type: 'job.statuses', ref, reports: reports.map((report) => ({ at, ...report })) }));
    return acked;
  }

  /** An idle pilot's heartbeat (no job, the node's load); resolves when the matcher acks it. */
  heartbeat(): Promise<void> {
    const ref = this.#nextRef++;
    const acked = new Promise<void>((resolve) => this.#acks.set(ref, resolve));
    this.ws.send(encodeMessage({ type: 'heartbeat', ref, jobs: [], node: { load1: 0.5, diskFreeMB: 50_000 } }));
    return acked;
  }

  /** Sends a status report about an attempt; resolves when the matcher acks it (stored). */
  report(jobId: number, attempt: number, fields: ReportFields): Promise<void> {
    const ref = this.#nextRef++;
    const acked = new Promise<void>((resolve) => this.#acks.set(ref, resolve));
    this.ws.send(encodeMessage({ type: 'job.status', ref, jobId, attempt, at: new Date().toISOString(), ...fields }));
    return acked;
  }
}

type MatchMessage = Extract<MatcherMessage, { type: 'match' }>;

type ReportFields = Omit<
  Extract<PilotMessage, { type: 'job.status' }>,
  'type' | 'v' | 'ref' | 'jobId' | 'attempt' | 'at'
>;
