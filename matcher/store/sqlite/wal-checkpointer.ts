/**
 * Checkpoints the matcher's SQLite WAL from a worker thread. A checkpoint copies WAL pages into the
 * database file and ends with an fsync; run inside a commit (SQLite's default, every 1000 pages) it
 * stalls the event loop for milliseconds — on the 870k-job benchmark it cost more than every claim
 * statement together. Here the copying and the fsync happen on another thread, on its own connection.
 *
 * SQLite starts the WAL afresh only once a checkpoint has caught up with every frame, which a passive
 * checkpoint racing a busy writer rarely does. So when the WAL grows past `restartAboveFrames`, the
 * worker asks for a hold: the process's write batcher keeps its writes queued, the worker catches up
 * with the few frames written since its last pass, and the hold is released — the next commit then
 * rewrites the WAL from its start. A hold lasts a few milliseconds; `holdTimeoutMs` bounds it whatever
 * the worker does.
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../../shared/logger.ts';

/** Keeps writes queued while held; the WriteBatcher is one. */
export interface WriteGate {
  hold(): void;
  release(): void;
}

export interface WalCheckpointerOptions {
  path: string;
  gate: WriteGate;
  logger: Logger;
  /** Time between passive checkpoints. */
  intervalMs: number;
  /** WAL size (frames of one page) above which writes are held for a catch-up. */
  restartAboveFrames: number;
  /** Longest a hold may last. */
  holdTimeoutMs: number;
  /**
   * Called once if the worker dies (it could not open the file, say): the process must then checkpoint
   * inside its commits again, or the WAL would grow without end.
   */
  onFailure(): void;
}

export interface CheckpointPass {
  /** Frames in the WAL, and how many of them are now in the database file. */
  walFrames: number;
  checkpointedFrames: number;
  /** True for the catch-up pass run while writes were held. */
  held: boolean;
}

/** Unheld passes repeat (up to 8 in a row) until at most this many frames are left for the held one. */
const HOLD_AT_MOST_FRAMES = 256;

type FromWorker =
  | { type: 'pass'; walFrames: number; checkpointedFrames: number; held: boolean }
  | { type: 'hold' }
  | { type: 'released' }
  | { type: 'failed'; message: string };

// Plain JavaScript run with `eval`: the matcher ships as one bundle, so no worker file sits beside it.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driverPath);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 0');
let timer = null;
function pass(held) {
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ type: 'pass', walFrames: result.log, checkpointedFrames: result.checkpointed, held });
    return result;
  } catch (error) {
    parentPort.postMessage({ type: 'failed', message: String(error && error.message) });
    return null;
  }
}
let catchUps = 0;
function tick() {
  timer = null;
  const result = pass(false);
  if (!result || result.log < workerData.restartAboveFrames) {
    timer = setTimeout(tick, workerData.intervalMs);
  } else if (result.log - result.checkpointed > workerData.holdAtMostFrames && catchUps < 8) {
    // Writes landed during the pass: another unheld pass first, so the held one is short.
    catchUps += 1;
    timer = setImmediate(tick);
  } else {
    catchUps = 0;
    parentPort.postMessage({ type: 'hold' });
  }
}
parentPort.on('message', (message) => {
  if (message === 'held') {
    pass(true);
    parentPort.postMessage({ type: 'released' });
    timer = setTimeout(tick, workerData.intervalMs);
  } else if (message === 'stop') {
    if (timer) { clearTimeout(timer); clearImmediate(timer); }
    db.close();
    parentPort.close();
  }
});
timer = setTimeout(tick, workerData.intervalMs);
`;

export class WalCheckpointer extends EventEmitter<{ pass: [CheckpointPass] }> {
  readonly #worker: Worker;
  readonly #options: WalCheckpointerOptions;
  #holdTimer: NodeJS.Timeout | null = null;
  #holdStartedMs = 0;
  #longestHoldMs = 0;
  #holds = 0;
  #failuresLogged = 0;
  #stopping = false;
  #exited = false;
  #failed = false;

  constructor(options: WalCheckpointerOptions) {
    super();
    this.#options = options;
    const driverPath = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        driverPath,
        path: options.path,
        intervalMs: options.intervalMs,
        restartAboveFrames: options.restartAboveFrames,
        holdAtMostFrames: HOLD_AT_MOST_FRAMES,
      },
    });
    this.#worker.unref();
    this.#worker.on('message', (message: FromWorker) => this.#onMessage(message));
    this.#worker.on('error', (error) => this.#fail(error));
    this.#worker.on('exit', (code) => {
      this.#exited = true;
      if (!this.#stopping) this.#fail(new Error(`the checkpoint worker exited with code ${code}`));
    });
  }

  /** How many times writes were held for a catch-up. */
  get holds(): number {
    return this.#holds;
  }

  #onMessage(message: FromWorker): void {
    switch (message.type) {
      case 'pass':
        this.emit('pass', {
          walFrames: message.walFrames,
          checkpointedFrames: message.checkpointedFrames,
          held: message.held,
        });
        return;
      case 'hold':
        this.#holds += 1;
        this.#holdStartedMs = performance.now();
        this.#options.gate.hold();
        this.#holdTimer = setTimeout(() => {
          this.#options.logger.warn(
            { holdTimeoutMs: this.#options.holdTimeoutMs },
            'WAL catch-up took too long: writes resumed',
          );
          this.#release();
        }, this.#options.holdTimeoutMs);
        // Writes run synchronously inside one turn of the event loop, so none is open now.
        this.#worker.postMessage('held');
        return;
      case 'released':
        this.#release();
        return;
      case 'failed':
        // A checkpoint fails only on I/O errors or a locked file; the next pass tries again.
        if (this.#failuresLogged < 10) {
          this.#failuresLogged += 1;
          this.#options.logger.warn({ reason: message.message }, 'WAL checkpoint failed');
        }
        return;
    }
  }

  #fail(error: unknown): void {
    this.#release();
    if (this.#failed) return;
    this.#failed = true;
    this.#options.logger.error({ err: error }, 'WAL checkpointer failed: commits checkpoint again');
    this.#options.onFailure();
  }

  #release(): void {
    if (this.#holdTimer) {
      clearTimeout(this.#holdTimer);
      this.#longestHoldMs = Math.max(this.#longestHoldMs, performance.now() - this.#holdStartedMs);
    }
    this.#holdTimer = null;
    this.#options.gate.release();
  }

  /** Stops the worker (the last connection to close checkpoints what is left). */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#release();
    if (this.#exited) return;
    this.#options.logger.info(
      { holds: this.#holds, longestHoldMs: Math.round(this.#longestHoldMs * 10) / 10 },
      'WAL checkpointer stopped',
    );
    this.#worker.postMessage('stop');
    await new Promise<void>((resolve) => {
      const done = setTimeout(() => void this.#worker.terminate().then(() => resolve()), 2000);
      this.#worker.once('exit', () => {
        clearTimeout(done);
        resolve();
      });
    });
  }
}
