/**
 * The matcher's side of WebSocket liveness. A worker node that vanishes without closing its TCP
 * connection (power cut, partition, a frozen process) leaves a socket that looks open for hours: jobs
 * would be pushed into it and its running jobs would wait for the stall timeout. So every connection
 * is pinged each `pingIntervalMs`, and one that has answered nothing (no pong, no frame) for
 * `timeoutMs` is terminated; its close path then runs as for any disconnect (parked offers go,
 * presence ends). One timer serves every connection, so ten thousand pilots cost one timer.
 */
import type { WebSocket } from 'ws';
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/logger.ts';

export interface LivenessOptions {
  pingIntervalMs: number;
  timeoutMs: number;
}

interface Watched {
  lastHeardMs: number;
  logger: () => Logger;
  /** Called just before the connection is terminated for silence. */
  onDropped: () => void;
}

export class ConnectionLiveness {
  readonly #options: LivenessOptions;
  readonly #clock: Clock;
  readonly #watched = new Map<WebSocket, Watched>();
  readonly #timer: NodeJS.Timeout;

  constructor(options: LivenessOptions, deps: { clock: Clock }) {
    this.#options = options;
    this.#clock = deps.clock;
    this.#timer = setInterval(() => this.#round(), options.pingIntervalMs);
    this.#timer.unref();
  }

  /** Follows the connection until it closes; `logger` gives its current context (pilot, site). */
  watch(socket: WebSocket, logger: () => Logger, onDropped: () => void = () => undefined): void {
    const watched: Watched = { lastHeardMs: this.#clock.nowMs(), logger, onDropped };
    this.#watched.set(socket, watched);
    const heard = (): void => {
      watched.lastHeardMs = this.#clock.nowMs();
    };
    socket.on('pong', heard);
    socket.on('message', heard);
    socket.on('close', () => this.#watched.delete(socket));
  }

  /** Connections followed now. */
  get size(): number {
    return this.#watched.size;
  }

  #round(): void {
    const nowMs = this.#clock.nowMs();
    for (const [socket, watched] of this.#watched) {
      const silentMs = nowMs - watched.lastHeardMs;
      if (silentMs >= this.#options.timeoutMs) {
        watched.logger().warn({ silentMs }, 'pilot connection unresponsive, dropped');
        this.#watched.delete(socket);
        watched.onDropped();
        socket.terminate();
      } else if (socket.readyState === socket.OPEN) {
        socket.ping();
      }
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#watched.clear();
  }
}
