/**
 * The pilot's log goes two ways: to stderr (the batch system keeps it with the pilot's output) and to
 * the matcher (`pilothouse pilots logs`). Lines logged before the link exists (probe, time left) wait
 * here, up to a cap, and go out with the first connection.
 */
import type { DestinationStream } from 'pino';
import type { LogSink } from './matcher-link.ts';

const MAX_EARLY_LINES = 5_000;

export class LogTee implements DestinationStream {
  readonly #local: DestinationStream;
  #sink: LogSink | null = null;
  readonly #early: string[] = [];

  constructor(local: DestinationStream) {
    this.#local = local;
  }

  write(line: string): void {
    this.#local.write(line);
    if (this.#sink !== null) this.#sink.log(line);
    else if (this.#early.length < MAX_EARLY_LINES) this.#early.push(line);
  }

  /** From now on lines also go to `sink` (the early ones first). */
  attach(sink: LogSink): void {
    for (const line of this.#early.splice(0)) sink.log(line);
    this.#sink = sink;
  }
}
