/**
 * Builds a pilot from its options and runs it to the end: config, logger (stderr + shipped to the
 * matcher), probe, time left, slot, matcher link, job runner with its watchdog, loop, signals, drain
 * file. Returns the exit code; the caller decides how to exit.
 * SIGTERM/SIGINT once: drain (no new work, running jobs finish within the drain grace). Twice: kill
 * running jobs and leave. The drain file and the matcher's drain command act as the first SIGTERM.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import { pino } from 'pino';
import { systemClock } from '../shared/clock.ts';
import { MatcherEndpoints } from '../shared/endpoints.ts';
import { PilothouseError } from '../shared/errors.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { compilePilotConfig, type PilotConfig, type RawPilotOptions } from './config.ts';
import { exchangeSecret, staticCredentials, type PilotCredentials } from './credentials.ts';
import { JobRunner } from './job-runner.ts';
import { setUpIsolation } from './isolation-setup.ts';
import { LogTee } from './log-tee.ts';
import { PilotLoop, type PilotExit } from './loop.ts';
import { WsMatcherLink, type HelloBody } from './matcher-link.ts';
import { freeDiskMB, probeNode, runTool } from './probe.ts';
import { MatcherAgent } from './http-request.ts';
import { cpuPowerOfNode } from './cpu-power-cache.ts';
import { runCpuBenchmark } from './cpu-power.ts';
import { HttpSandboxTransfer } from './sandbox-transfer.ts';
import { Slot } from './slot.ts';
import { planSlot } from './slot-plan.ts';
import { detectBatchSystem, findSlotEnds, readJobFeatureLimits, type TimeLeftDeps } from './time-left.ts';
import { PILOT_VERSION } from './version.ts';

export const EXIT_CODES = { ok: 0, failure: 1, usage: 2, auth: 3 } as const;

const AUTH_CODES = new Set([
  'TOKEN_MISSING',
  'TOKEN_INVALID',
  'TOKEN_EXPIRED',
  'TOKEN_REVOKED',
  'FORBIDDEN',
  'PILOT_SECRET_INVALID',
  'PILOT_SECRET_SPENT',
]);

export async function runPilot(raw: RawPilotOptions, env: NodeJS.ProcessEnv): Promise<number> {
  let config: PilotConfig;
  try {
    config = compilePilotConfig(raw, env);
  } catch (error) {
    if (error instanceof PilothouseError && error.code === 'CONFIG_INVALID') {
      process.stderr.write(`pilot: ${error.message}\n`);
      return EXIT_CODES.usage;
    }
    throw error;
  }
  const startMs = systemClock.nowMs();
  const logTee = new LogTee(pino.destination({ fd: 2, sync: true }));
  const logger = createLogger({ component: 'pilot', level: config.logLevel, destination: logTee }).child({
    pilotStamp: config.pilotStamp,
    site: config.site,
  });
  if (config.drainFile !== null && existsSync(config.drainFile)) {
    // DIRAC's JobAgent stops the same way: the node is being drained, so take nothing.
    logger.warn({ drainFile: config.drainFile }, 'drain file present: not starting');
    process.stderr.write(`pilot: the node is being drained (${config.drainFile} exists); not starting\n`);
    return EXIT_CODES.ok;
  }
  try {
    await mkdir(config.workdir, { recursive: true });
  } catch (error) {
    logger.error({ workdir: config.workdir, err: error }, 'cannot create workdir');
    process.stderr.write(`pilot: cannot create --workdir ${config.workdir}: ${(error as Error).message}\n`);
    return EXIT_CODES.failure;
  }

  // https/wss against --ca-file; one view of which matcher address is in use, shared by the WebSocket,
  // token exchanges and transfers.
  const agent = new MatcherAgent(config.caPem);
  const endpoints = new MatcherEndpoints(config.matcherUrls);
  // The matcher is reached (a pilot secret exchanged, the WebSocket opened) while the node is probed;
  // hello, which tells what the probes found, is said when the pilot starts its loop.
  let hello: HelloBody | null = null;
  const connecting = openMatcherLink(config, {
    agent,
    endpoints,
    logger,
    hello: () => {
      if (hello === null) throw new PilothouseError('INTERNAL', 'hello asked for before the node was probed');
      return hello;
    },
  });
  connecting.catch(() => undefined); // its failure is handled below, after the probes

  const timeLeftDeps: TimeLeftDeps = {
    env,
    run: runTool,
    readText: (file) => readFile(file, 'utf8').catch(() => null),
    nowMs: () => systemClock.nowMs(),
    startMs,
    configuredWallTimeSec: config.wallTimeSec,
  };
  // The isolation check starts a container: it runs beside the node's probes, not before them.
  const [isolationOutcome, probe, features, slotEnds] = await Promise.all([
    setUpIsolation(config, raw, env).then(
      (isolation) => ({ isolation }),
      (error: unknown) => ({ error }),
    ),
    probeNode({
      workdir: config.workdir,
      env,
      cpuPower: config.cpuPower,
      skipGpus: config.gpus === 0,
      measureCpuPower: (nodeKey) =>
        cpuPowerOfNode(
          {
            file: config.cpuPowerCacheFile,
            maxAgeMs: config.cpuPowerCacheMs,
            nodeKey,
            nowMs: () => systemClock.nowMs(),
          },
          () => runCpuBenchmark().power,
        ),
    }),
    readJobFeatureLimits(env),
    findSlotEnds(timeLeftDeps),
  ]);
  if ('error' in isolationOutcome) {
    const { error } = isolationOutcome;
    // Said nothing yet: the connection goes without a hello (an exchange still retrying ends with the process).
    void connecting.then(
      ({ link, credentials }) => {
        credentials.stop();
        void link.close('isolation unavailable');
      },
      () => undefined,
    );
    agent.close();
    if (error instanceof PilothouseError && error.code === 'CONFIG_INVALID') {
      process.stderr.write(`pilot: ${error.message}\n`);
      return EXIT_CODES.usage;
    }
    throw error;
  }
  const { isolation } = isolationOutcome;
  if (isolation.name === 'none')
    logger.warn('payloads are not isolated (--isolation none): jobs can read what the pilot reads');
  const plan = planSlot(probe, config, features, startMs);
  for (const warning of plan.warnings) logger.warn(warning);
  const slot = new Slot(plan.options);
  const batchEnd = (ends: typeof slotEnds): number | null =>
    ends.find((end) => end.source !== 'configured')?.endsAtMs ?? null;
  slot.setBatchEnd(batchEnd(slotEnds));
  slot.observeDisk(
    probe.node.diskFreeMB === null || probe.node.diskFreeMB === undefined
      ? null
      : Math.max(0, probe.node.diskFreeMB - config.minFreeDiskMB),
  );
  const batch = detectBatchSystem(env);
  const endsAt = slot.endsAtMs();
  const node = {
    ...probe.node,
    isolation: isolation.name,
    batchSystem: batch.system,
    batchJobId: batch.jobId === null ? null : batch.jobId.slice(0, 255),
    slotEndsAt: endsAt === null ? null : new Date(endsAt).toISOString(),
  };
  logger.info(
    {
      node,
      slot: {
        cores: slot.totalCores,
        memoryMB: slot.totalMemoryMB,
        gpus: slot.gpus.map((gpu) => gpu.id),
        diskMB: plan.options.diskMB,
        wholeNode: plan.options.wholeNode,
      },
      timeLeft: slotEnds,
      cpuPowerSource: probe.cpuPowerSource,
      version: PILOT_VERSION,
    },
    'pilot started',
  );

  let credentials: PilotCredentials;
  let link: WsMatcherLink;
  try {
    ({ credentials, link } = await connecting);
  } catch (error) {
    const failure = error instanceof PilothouseError ? error : new PilothouseError('INTERNAL', String(error));
    logger.error({ code: failure.code }, 'pilot secret exchange failed');
    process.stderr.write(`pilot: ${failure.message} [${failure.code}]\n`);
    agent.close();
    return AUTH_CODES.has(failure.code) ? EXIT_CODES.auth : EXIT_CODES.failure;
  }
  hello = {
    pilotStamp: config.pilotStamp,
    pilotVersion: PILOT_VERSION,
    site: config.site,
    ce: config.ce,
    queue: config.queue,
    node,
  };
  logTee.attach(link);
  const runner = new JobRunner({
    workdir: config.workdir,
    site: config.site,
    ce: config.ce,
    queue: config.queue,
    pilotStamp: config.pilotStamp,
    gpus: slot.gpus,
    watchdog: {
      intervalMs: config.watchdogIntervalMs,
      memoryPolicy: config.memoryLimitPolicy,
      stallTimeoutMs: config.stallTimeoutMs,
      stallMinCpuRatio: config.stallMinCpuRatio,
      minFreeDiskMB: config.minFreeDiskMB,
      diskCheckIntervalMs: config.diskCheckIntervalMs,
    },
    onNodeSample: (sample) => {
      slot.observeDisk(
        sample.freeDiskMB === null ? null : Math.max(0, sample.freeDiskMB - config.minFreeDiskMB),
        sample.usedByJobMB,
      );
    },
    keepWorkdirs: config.keepWorkdirs,
    killGraceMs: config.killGraceMs,
    appStatusPollMs: config.appStatusPollMs,
    maxOutputSandboxBytes: config.maxOutputSandboxBytes,
    unpackLimits: { maxBytes: config.maxUnpackedBytes, maxEntries: config.maxUnpackedEntries },
    transfer: new HttpSandboxTransfer({
      matcher: endpoints,
      maxDownloadBytes: config.maxInputSandboxBytes,
      attempts: config.transferAttempts,
      retryWindowMs: config.transferRetryWindowMs,
      backoff: config.reconnectBackoff,
      logger,
      agent,
    }),
    baseEnv: env,
    isolation,
    clock: systemClock,
    logger,
  });
  let idleDiskFreeMB = probe.node.diskFreeMB ?? null;
  const loop = new PilotLoop({
    link,
    runner,
    slot,
    clock: systemClock,
    logger,
    config,
    nodeStatus: () => ({
      load1: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
      diskFreeMB: runner.nodeSample().freeDiskMB ?? idleDiskFreeMB,
    }),
  });

  // The slot's end, asked again now and then (a batch system may extend or cut it, MJF may announce a shutdown).
  const timeLeftTimer = setInterval(() => {
    findSlotEnds(timeLeftDeps)
      .then((ends) => {
        const before = slot.endsAtMs();
        slot.setBatchEnd(batchEnd(ends));
        if (slot.endsAtMs() !== before)
          logger.info({ timeLeft: ends, timeLeftSec: slot.timeLeftSec(systemClock.nowMs()) }, 'slot end changed');
      })
      .catch((error: unknown) => logger.warn({ err: error }, 'time left refresh failed'));
  }, config.timeLeftRefreshMs);
  // Free disk while no job runs (the watchdog measures it while jobs do).
  const diskTimer = setInterval(() => {
    if (loop.runningJobs > 0) return;
    void freeDiskMB(config.workdir).then((free) => {
      idleDiskFreeMB = free;
      slot.observeDisk(free === null ? null : Math.max(0, free - config.minFreeDiskMB));
    });
  }, 60_000);
  const drainFile = config.drainFile;
  const drainTimer = setInterval(() => {
    if (drainFile !== null && !loop.draining && existsSync(drainFile)) {
      logger.info({ drainFile }, 'drain file appeared');
      loop.drain('drain-file');
    }
  }, config.drainFilePollMs);
  for (const timer of [timeLeftTimer, diskTimer, drainTimer]) timer.unref();

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals === 1) {
      logger.info({ signal }, 'drain requested');
      loop.drain('drained');
    } else {
      logger.warn({ signal }, 'terminate requested');
      loop.terminate();
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    return exitCodeFor(await loop.run(), logger);
  } finally {
    credentials.stop();
    agent.close();
    for (const timer of [timeLeftTimer, diskTimer, drainTimer]) clearInterval(timer);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

/**
 * The pilot's credentials (a pilot secret exchanged for a token that is then kept fresh, or the token
 * it was given) and its link to the matcher, already connecting.
 */
async function openMatcherLink(
  config: PilotConfig,
  deps: { agent: MatcherAgent; endpoints: MatcherEndpoints; logger: Logger; hello: () => HelloBody },
): Promise<{ credentials: PilotCredentials; link: WsMatcherLink }> {
  const credentials =
    config.pilotSecret === null
      ? staticCredentials(config.pilotToken ?? '')
      : await exchangeSecret({
          matcher: deps.endpoints,
          pilotStamp: config.pilotStamp,
          secret: config.pilotSecret,
          agent: deps.agent,
          backoff: config.reconnectBackoff,
          startTimeoutMs: config.idleTimeoutMs,
          clock: systemClock,
          logger: deps.logger,
        });
  const link = new WsMatcherLink({
    matcher: deps.endpoints,
    token: () => credentials.token(),
    ca: config.caPem,
    hello: deps.hello,
    logger: deps.logger,
    backoff: config.reconnectBackoff,
    reportCoalesceMs: config.reportCoalesceMs,
  });
  link.preconnect();
  return { credentials, link };
}

export function exitCodeFor(exit: PilotExit, logger: Logger): number {
  if (exit.error !== undefined) {
    process.stderr.write(`pilot: ${exit.error.message} [${exit.error.code}]\n`);
    return AUTH_CODES.has(exit.error.code) ? EXIT_CODES.auth : EXIT_CODES.failure;
  }
  if (!exit.everConnected) {
    logger.error('matcher never reached');
    process.stderr.write('pilot: the matcher could not be reached before the idle timeout\n');
    return EXIT_CODES.failure;
  }
  return exit.undeliveredReports > 0 ? EXIT_CODES.failure : EXIT_CODES.ok;
}
