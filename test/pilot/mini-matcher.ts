/**
 * A minimal matcher for pilot integration tests: an HTTP server on port 0 with the pilots' WebSocket
 * endpoint and the sandbox routes. Tests script it through `onFrame` and read what it received.
 */
import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  encodeMessage,
  parsePilotMessage,
  type MatcherMessageBody,
  type PilotMessage,
} from '../../shared/protocol/messages.ts';

export interface Session {
  socket: WebSocket;
  authorization: string | undefined;
  send(body: MatcherMessageBody): void;
}

export class MiniMatcher extends EventEmitter<{
  frame: [frame: PilotMessage, session: Session];
  connection: [session: Session];
  close: [session: Session];
}> {
  readonly frames: PilotMessage[] = [];
  readonly sandboxes = new Map<string, Buffer>();
  readonly sandboxTokens: string[] = [];
  /** Every accepted WebSocket session, the live one last. */
  readonly sessions: Session[] = [];
  upgrades = 0;
  /** When set, upgrades are answered with this HTTP status instead. */
  refuseWith: number | null = null;
  /** PUT answers for the next uploads (e.g. [503]), then 201. */
  putFailures: number[] = [];
  readonly #server: http.Server;
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #sockets = new Set<Socket>();

  constructor() {
    super();
    this.#server = http.createServer((req, res) => void this.#http(req, res));
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('upgrade', (req, socket, head) => {
      this.upgrades += 1;
      if (this.refuseWith !== null || req.url !== '/api/pilots/connect') {
        socket.end(`HTTP/1.1 ${this.refuseWith ?? 404} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        const session: Session = {
          socket: ws,
          authorization: req.headers.authorization,
          send: (body) => ws.send(encodeMessage(body)),
        };
        ws.on('message', (data) => {
          const frame = parsePilotMessage(String(data));
          this.frames.push(frame);
          this.emit('frame', frame, session);
        });
        ws.on('close', () => this.emit('close', session));
        this.sessions.push(session);
        this.emit('connection', session);
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Resolves with the next frame of `type` (register before the action that causes it). */
  next<T extends PilotMessage['type']>(type: T): Promise<[Extract<PilotMessage, { type: T }>, Session]> {
    return new Promise((resolve) => {
      const onFrame = (frame: PilotMessage, session: Session): void => {
        if (frame.type !== type) return;
        this.off('frame', onFrame);
        resolve([frame as Extract<PilotMessage, { type: T }>, session]);
      };
      this.on('frame', onFrame);
    });
  }

  ofType<T extends PilotMessage['type']>(type: T): Extract<PilotMessage, { type: T }>[] {
    return this.frames.filter((frame): frame is Extract<PilotMessage, { type: T }> => frame.type === type);
  }

  async close(): Promise<void> {
    for (const client of this.#wss.clients) client.terminate();
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #http(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const match = /^\/api\/sandboxes\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '');
    if (match === null) {
      res.writeHead(404).end();
      return;
    }
    const ref = match[1] as string;
    this.sandboxTokens.push(req.headers.authorization ?? '');
    if (req.method === 'GET') {
      const bytes = this.sandboxes.get(ref);
      if (bytes === undefined) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': 'application/gzip' }).end(bytes);
      return;
    }
    if (req.method === 'PUT') {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const failure = this.putFailures.shift();
      if (failure !== undefined) {
        res.writeHead(failure).end();
        return;
      }
      const bytes = Buffer.concat(chunks);
      const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      if (actual !== ref || req.headers['content-type'] !== 'application/gzip') {
        res.writeHead(400).end();
        return;
      }
      this.sandboxes.set(ref, bytes);
      res.writeHead(201).end();
      return;
    }
    res.writeHead(405).end();
  }
}
