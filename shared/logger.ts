import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** Component name bound to every record: `matcher`, `pilot`, `site-director`, `cli`. */
  component: string;
  level?: string;
  /** Where records go; defaults to stderr so that stdout stays free for command output. */
  destination?: DestinationStream;
}

/**
 * The only place that creates a root logger. Everything else receives a Logger and binds its
 * context once with `logger.child({ jobId, pilotId, site })`; messages are fixed strings.
 * No pino transports: they run in worker threads and do not survive the single-file pilot bundle.
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true });
  return pino(
    {
      level: options.level ?? 'info',
      base: { component: options.component },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/** A logger that drops everything (used by tests that do not assert on logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
