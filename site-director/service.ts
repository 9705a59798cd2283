/**
 * The site director as a long-running service: a first cycle at once, then one per tick of the
 * configured cron schedule (node-cron). Cycles never overlap: a tick that comes while a cycle still
 * runs is skipped and logged. `stop()` stops the schedule, aborts CE calls under way, waits for the
 * cycle to end and closes the backends; it is safe to call twice.
 */
import { EventEmitter, once } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import cron, { type ScheduledTask } from 'node-cron';
import { PilothouseError, toPilothouseError } from '../shared/errors.ts';
import { systemClock, type Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { DirectorReport } from '../shared/protocol/site-director.ts';
import type { CeBackend } from './backends/backend.ts';
import { createBackend, DEFAULT_CANCEL_GRACE_SEC } from './backends/factory.ts';
import type { DirectorConfig } from './config/load.ts';
import { SiteDirector } from './director.ts';
import { DirectorMatcherClient } from './matcher-client.ts';

export interface DirectorServiceOptions {
  config: DirectorConfig;
  /** The matcher's addresses (`--matcher`, comma-separated), tried in turn. */
  matcherUrls: readonly string[];
  tokenFile: string;
  caPem?: string | undefined;
  clock?: Clock;
  logger: Logger;
}

export interface DirectorServiceEvents {
  cycle: [DirectorReport];
}

export interface RunningDirector {
  director: SiteDirector;
  events: EventEmitter<DirectorServiceEvents>;
  /** Resolves with the next cycle's report. */
  nextCycle(): Promise<DirectorReport>;
  stop(options?: { cancelLocalPilots?: boolean }): Promise<void>;
}

/**
 * The token, re-read when its file changes: the matcher renews admin.token in place, and an operator
 * may rotate a director's token without restarting it.
 */
export function tokenFromFile(file: string): () => string {
  let cached: { mtimeMs: number; token: string } | null = null;
  return () => {
    let mtimeMs: number;
    try {
      mtimeMs = statSync(file).mtimeMs;
      if (cached?.mtimeMs !== mtimeMs) {
        const token = readFileSync(file, 'utf8').trim();
        if (token === '') throw new Error('the file is empty');
        cached = { mtimeMs, token };
      }
    } catch (error) {
      if (cached) return cached.token;
      throw new PilothouseError('CONFIG_INVALID', `--token-file ${file}: ${(error as Error).message}`, {
        field: 'tokenFile',
      });
    }
    return cached.token;
  };
}

export interface BuiltDirector {
  director: SiteDirector;
  backends: Map<string, CeBackend>;
  matcher: DirectorMatcherClient;
  /** Closes the backends (SSH connections, HTTPS agents) and the matcher client. */
  close(): Promise<void>;
}

export function buildDirector(options: DirectorServiceOptions): BuiltDirector {
  const token = tokenFromFile(options.tokenFile);
  token(); // a missing or empty token file is an error before anything starts
  const matcher = new DirectorMatcherClient({ urls: options.matcherUrls, token, caPem: options.caPem });
  const backends = new Map<string, CeBackend>();
  for (const ce of options.config.ces) {
    backends.set(
      ce.key,
      createBackend(ce, { ceTimeoutMs: options.config.ceTimeoutMs, cancelGraceSec: DEFAULT_CANCEL_GRACE_SEC }),
    );
  }
  const director = new SiteDirector({
    config: options.config,
    matcher,
    // Pilots get every address too: they fail over the same way (their --matcher takes a list).
    pilotMatcherUrl: options.config.pilotMatcherUrl ?? options.matcherUrls.join(','),
    backends,
    clock: options.clock ?? systemClock,
    logger: options.logger.child({ director: options.config.name }),
  });
  return {
    director,
    backends,
    matcher,
    async close() {
      for (const backend of backends.values()) await backend.close().catch(() => undefined);
      await matcher.close();
    },
  };
}

export function startDirectorService(options: DirectorServiceOptions): RunningDirector {
  const built = buildDirector(options);
  const { director } = built;
  const logger = options.logger.child({ director: options.config.name });
  const events = new EventEmitter<DirectorServiceEvents>();
  let running: Promise<void> | null = null;
  let stopped = false;

  const tick = (): void => {
    if (stopped) return;
    if (running) {
      logger.warn('cycle still running: tick skipped');
      return;
    }
    running = director
      .runCycle()
      .then((report) => {
        events.emit('cycle', report);
      })
      .catch((error: unknown) => logger.error({ err: toPilothouseError(error) }, 'cycle failed'))
      .finally(() => {
        running = null;
      });
  };

  const task: ScheduledTask = cron.schedule(options.config.schedule, tick, {
    name: `site-director-${options.config.name}`,
    noOverlap: true,
  });
  tick();

  let stopping: Promise<void> | null = null;
  return {
    director,
    events,
    async nextCycle() {
      const [report] = await once(events, 'cycle');
      return report as DirectorReport;
    },
    stop(stopOptions = {}) {
      stopping ??= (async () => {
        stopped = true;
        await task.stop();
        await task.destroy();
        if (stopOptions.cancelLocalPilots) {
          await running;
          const cancelled = await director.cancelLocalPilots().catch((error: unknown) => {
            logger.warn({ err: toPilothouseError(error).message }, 'local pilots not cancelled');
            return 0;
          });
          logger.info({ cancelled }, 'local pilots cancelled');
        } else director.abort();
        await running;
        await built.close();
      })();
      return stopping;
    },
  };
}

/** One cycle and done (`--once`). */
export async function runOnce(options: DirectorServiceOptions): Promise<DirectorReport> {
  const built = buildDirector(options);
  try {
    return await built.director.runCycle();
  } finally {
    await built.close();
  }
}
