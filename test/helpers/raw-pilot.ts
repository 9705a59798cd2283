/** A scripted pilot speaking the raw protocol over a real WebSocket: tests await frames, never sleep. */
import WebSocket from 'ws';
import { once } from 'node:events';
import type { JobStatus } from '../../shared/job/status.ts';
import {
  encodeMessage,
  parseMatcherMessage,
  type MatcherMessage,
  type PilotMessageBody,
} from '../../shared/protocol/messages.ts';

export const NODE = {
  hostname: 'wn-test',
  cores: 4,
  memoryMB: 8192,
  os: 'linux',
  arch: 'x86_64',
  cpuModel: 'test cpu',
};

export interface RawPilotOptions {
  ca?: string;
  autoPong?: boolean;
}

export class RawPilot {
  readonly ws: WebSocket;
  readonly #inbox: MatcherMessage[] = [];
  readonly #waiters: { types: readonly string[]; resolve: (m: MatcherMessage) => void }[] = [];

  /** `autoPong: false`: a frozen node, whose TCP connection stays up but which answers no ping. */
  constructor(url: string, token: string, options: RawPilotOptions = {}) {
    this.ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/pilots/connect`, {
      headers: { authorization: `Bearer ${token}` },
      ...(options.ca !== undefined && { ca: options.ca }),
      ...(options.autoPong !== undefined && { autoPong: options.autoPong }),
    });
    this.ws.on('message', (data) => {
      const message = parseMatcherMessage(String(data));
      const index = this.#waiters.findIndex((w) => w.types.includes(message.type));
      if (index >= 0) this.#waiters.splice(index, 1)[0]?.resolve(message);
      else this.#inbox.push(message);
    });
  }

  static async connect(
    url: string,
    token: string,
    hello: { stamp: string; site?: string; holding?: { jobId: number; attempt: number }[] },
    options: RawPilotOptions = {},
  ): Promise<RawPilot> {
    const pilot = new RawPilot(url, token, options);
    await once(pilot.ws, 'open');
    pilot.send({
      type: 'hello',
      pilotStamp: hello.stamp,
      pilotVersion: 'test',
      site: hello.site ?? 'Site.A',
      ce: 'ce1',
      queue: 'q1',
      node: NODE,
      ...(hello.holding !== undefined && { holding: hello.holding }),
    });
    await pilot.next('welcome');
    return pilot;
  }

  send(body: PilotMessageBody): void {
    this.ws.send(encodeMessage(body));
  }

  /** A one-report job.status frame about an attempt, stamped now (its ack is the caller's to await). */
  sendStatus(ref: number, jobId: number, attempt: number, status: JobStatus): void {
    this.send({ type: 'job.status', ref, jobId, attempt, at: new Date().toISOString(), status });
  }

  sendRaw(frame: string): void {
    this.ws.send(frame);
  }

  /** The next frame of one of these types (earlier frames of other types stay queued). */
  next<T extends MatcherMessage['type']>(...types: T[]): Promise<Extract<MatcherMessage, { type: T }>> {
    const index = this.#inbox.findIndex((m) => (types as string[]).includes(m.type));
    if (index >= 0) return Promise.resolve(this.#inbox.splice(index, 1)[0] as Extract<MatcherMessage, { type: T }>);
    return new Promise((resolve) => this.#waiters.push({ types, resolve: resolve as (m: MatcherMessage) => void }));
  }

  pending(type: MatcherMessage['type']): number {
    return this.#inbox.filter((m) => m.type === type).length;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = once(this.ws, 'close');
    this.ws.close();
    await closed;
  }
}

export const resources = (cores = 1) => ({ cores, memoryMB: 4096, wallTimeSec: null, tags: [] as string[] });
