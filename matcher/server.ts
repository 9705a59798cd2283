/**
 * Assembles the matcher: key ring and tokens, the job and credential stores, sandboxes, matching, REST
 * routes and the pilot WebSocket endpoint, on one HTTP (or HTTPS, given a certificate) server.
 * `startMatcher` returns once it listens; `stop()` closes pilot sessions before the stores, and is
 * safe to call twice. A maintenance tick reloads keys (rotations and revocations by the CLI), drops
 * retired keys, rotates on age, purges expired credentials and keeps admin.token valid.
 */
import { randomUUID } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { isoNow, systemClock, type Clock } from '../shared/clock.ts';
import { PilothouseError } from '../shared/errors.ts';
import { toAnswerError } from './store/store-errors.ts';
import type { Logger } from '../shared/logger.ts';
import { KeyRing } from './auth/key-ring.ts';
import { OidcIssuers } from './auth/oidc.ts';
import { PilotCredentialService } from './auth/pilot-credentials.ts';
import { TokenService } from './auth/tokens.ts';
import type { MatcherConfig } from './config.ts';
import { FailureLimiter } from './http/failure-limiter.ts';
import { requestUrl, Router, sendError } from './http/router.ts';
import { adminRoutes } from './http/routes/admin.ts';
import { authRoutes } from './http/routes/auth.ts';
import type { RouteDeps } from './http/routes/context.ts';
import { jobReportRoutes } from './http/routes/job-reports.ts';
import { jobRoutes } from './http/routes/jobs.ts';
import { scheduleRoutes } from './http/routes/schedules.ts';
import { ScheduleRunner } from './schedules/schedule-runner.ts';
import { taskQueueDefinition } from './matching/task-queue-key.ts';
import { jobOperationRoutes } from './http/routes/job-operations.ts';
import { jobPriorityRoutes } from './http/routes/job-priority.ts';
import { jobSearchRoutes } from './http/routes/job-search.ts';
import { pilotRoutes } from './http/routes/pilots.ts';
import { matchingRoutes } from './http/routes/matching.ts';
import { policyRoutes } from './http/routes/policy.ts';
import { taskQueueRoutes } from './http/routes/task-queues.ts';
import { sandboxRoutes } from './http/routes/sandboxes.ts';
import { MatchService } from './matching/match-service.ts';
import { compileSchedulingPolicy, type PolicyDocument } from './matching/scheduling-policy.ts';
import { StoredPolicy } from './matching/stored-policy.ts';
import { SandboxStore } from './sandbox/sandbox-store.ts';
import type { CredentialStore } from './store/credential-store.ts';
import type { JobStore } from './store/job-store.ts';
import type { PilotActivityStore } from './store/pilot-activity-store.ts';
import type { PilotStore } from './store/pilot-store.ts';
import { openMatcherStores, type MatcherStores } from './store/open-stores.ts';
import { describeStoreLocation } from './store/location.ts';
import { PilotBundle } from './pilot-bundle/pilot-bundle.ts';
import { pilotRecordRoutes } from './http/routes/pilot-records.ts';
import { siteDirectorRoutes } from './http/routes/site-directors.ts';
import { FaultSweeper } from './maintenance/fault-sweeper.ts';
import { RetentionSweeper, type RetentionReport } from './maintenance/retention-sweeper.ts';
import { MatcherMetrics } from './metrics/matcher-metrics.ts';
import { operationsRoutes } from './http/routes/operations.ts';
import { apiDocsRoutes } from './http/routes/api-docs.ts';
import { UndeliveredMatches } from './ws/undelivered-matches.ts';
import { PilotSession } from './ws/pilot-session.ts';
import { PilotRegistry } from './ws/pilot-registry.ts';
import { ClusterSignals } from './cluster/cluster-signals.ts';
import { ConnectionLiveness } from './ws/connection-liveness.ts';
import { ConnectionQuota } from './ws/connection-quota.ts';
import { checkClusterIdentity } from './cluster/cluster-identity.ts';
import { LocalPresence, PRESENCE_BEAT_INTERVAL_MS } from './cluster/presence.ts';
import { buildLogin } from './auth/login/build-login.ts';
import { loginRoutes } from './http/routes/login.ts';
import { jobEventRoutes } from './http/routes/job-events.ts';
import { defaultWebRoot, webAppRoutes } from './http/routes/web-app.ts';

export const PILOT_CONNECT_PATH = '/api/pilots/connect';

export interface RunningMatcher {
  /** Base URL, e.g. http://127.0.0.1:41234 (https:// with TLS) */
  url: string;
  port: number;
  store: JobStore;
  matchService: MatchService;
  credentials: CredentialStore;
  pilotActivity: PilotActivityStore;
  pilots: PilotStore;
  tokens: TokenService;
  pilotCredentials: PilotCredentialService;
  keys: KeyRing;
  router: Router;
  adminTokenPath: string;
  /** The HTTP(S) server, for observers (tests wait on its 'request' events). */
  httpServer: Server;
  /** Runs one maintenance tick now (the timer runs it every keyMaintenanceIntervalMs). */
  maintain(): Promise<void>;
  /** One pass of the fault sweeper now (it also runs every faultSweepIntervalMs). */
  sweepFaults(): Promise<void>;
  /** One retention sweep now (it also runs every retention.sweepIntervalMs); null when another replica had it. */
  sweepRetention(): Promise<RetentionReport | null>;
  stop(): Promise<void>;
}

type MatcherDeps = {
  logger: Logger;
  clock?: Clock;
  /** A policy to publish to the store at start (`--policy FILE`); without one, the stored one applies. */
  policy?: PolicyDocument;
};

export async function startMatcher(config: MatcherConfig, deps: MatcherDeps): Promise<RunningMatcher> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const metrics = new MatcherMetrics();
  const stores = await openMatcherStores(config.db, {
    logger: deps.logger,
    walCheckpoint: config.walCheckpoint,
    clock: deps.clock ?? systemClock,
    onCommit: (seconds) => metrics.committed(seconds),
  });
  try {
    return await startOnStores(config, deps, stores, metrics);
  } catch (error) {
    // A matcher that could not start (its port taken, say) leaves the stores as it found them.
    await stores.close();
    throw error;
  }
}

async function startOnStores(
  config: MatcherConfig,
  deps: MatcherDeps,
  stores: MatcherStores,
  metrics: MatcherMetrics,
): Promise<RunningMatcher> {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger;
  const clusterId = await checkClusterIdentity({
    dataDir: config.dataDir,
    settings: stores.jobs,
    at: isoNow(clock),
  });
  const keys = await KeyRing.open({
    dataDir: config.dataDir,
    clock,
    maxTokenTtlSec: config.maxTokenTtlSec,
    logger: logger.child({ module: 'keys' }),
  });
  const { jobs: store, credentials, login: loginStore, pilotActivity, pilots } = stores;
  const externalIssuers = config.oidc ? new OidcIssuers(config.oidc, clock) : undefined;
  const tokens = new TokenService({ keys, clock, revocations: credentials, externalIssuers });
  const adminTokenPath = path.join(config.dataDir, 'admin.token');
  await ensureAdminToken(config, tokens, adminTokenPath, logger);
  const pilotCredentials = new PilotCredentialService({
    store: credentials,
    tokens,
    clock,
    logger: logger.child({ module: 'pilot-credentials' }),
    limits: config.pilotCredentials,
  });
  const exchangeLimiter = new FailureLimiter(
    { maxFailures: config.exchangeMaxFailures, windowMs: config.exchangeFailureWindowMs },
    { counts: credentials, clock },
  );
  const login = buildLogin({ config, store: loginStore, credentials, tokens, clock, logger });
  const sandboxes = new SandboxStore(path.join(config.dataDir, 'sandboxes'), config.limits.maxSandboxBytes);
  const matchService = new MatchService({
    store,
    clock,
    logger: logger.child({ module: 'matching' }),
    policy: compileSchedulingPolicy({}),
    // Other replicas can share a PostgreSQL database; a SQLite file has one matcher.
    sharedStore: config.db.kind === 'postgres',
    onMatchTried: (matched, seconds) => metrics.matchTried(matched, seconds),
  });
  const storedPolicy = new StoredPolicy({ store, matchService, logger: logger.child({ module: 'policy' }) });
  const seeded = deps.policy ? await storedPolicy.seed(deps.policy, isoNow(clock)) : 'kept';
  if (seeded === 'kept') await storedPolicy.reload();
  await matchService.refresh();
  const syncShares = (): Promise<void> =>
    matchService
      .syncShares()
      .catch((error: unknown) => logger.warn({ err: error }, 'exchanging fair-share usage failed'));
  await matchService.syncShares();
  const shareSyncTimer = setInterval(() => void syncShares(), config.shareSyncIntervalMs);
  shareSyncTimer.unref();
  // Picks up what other matchers sharing the store did (and heals any drift of the in-memory index).
  const refreshTimer = setInterval(() => {
    // Jobs another matcher sharing the store took in reach parked pilots here too (at this pace).
    storedPolicy
      .reload()
      .then(() => matchService.refresh())
      .then(() => matchService.wake())
      .catch((error: unknown) => logger.error({ err: error }, 'refreshing task queues failed'));
  }, config.taskQueueRefreshMs);
  refreshTimer.unref();

  const registry = new PilotRegistry();
  const presence = stores.presence ?? new LocalPresence((pilotId) => registry.isConnected(pilotId));
  const presenceTimer = setInterval(() => {
    presence.beat().catch((error: unknown) => logger.warn({ err: error }, 'replica beat failed'));
  }, PRESENCE_BEAT_INTERVAL_MS);
  presenceTimer.unref();
  const cluster = new ClusterSignals({
    bus: stores.bus,
    matchService,
    storedPolicy,
    registry,
    logger: logger.child({ module: 'cluster' }),
  });
  if (seeded === 'published') cluster.policyChanged();
  const scheduleRunner = new ScheduleRunner({
    store,
    clock,
    logger: logger.child({ module: 'schedules' }),
    windowMs: config.schedules.windowMs,
    pollMs: config.schedules.pollMs,
    jobsOf: (schedule, slotAt) =>
      schedule.jobs.map((description) => ({
        ownership: { vo: schedule.vo, group: schedule.group, owner: schedule.owner },
        description,
        taskQueue: taskQueueDefinition(schedule, description, matchService.policy.jobSharing(schedule.group)),
        schedule: { id: schedule.id, slotAt },
      })),
    onJobsWaiting: (taskQueueIds) => void cluster.jobsWaiting(taskQueueIds),
    onKillQueued: (pilotId, jobId, attempt) => cluster.commandsQueued(pilotId, jobId, attempt),
  });
  const routeDeps: RouteDeps = {
    cluster,
    store,
    pilotActivity,
    pilots,
    pilotBundle: new PilotBundle(config.pilotBundlePath),
    sandboxes,
    matchService,
    registry,
    keys,
    tokens,
    credentials,
    pilotCredentials,
    exchangeLimiter,
    clock,
    logger,
    limits: config.limits,
    maxAttempts: config.faultSweeper.maxAttempts,
    replicaId: presence.replicaId,
    storeFault: () => stores.fault(),
    clusterId,
    storedPolicy,
    metrics,
    login,
    stopping: () => shuttingDown,
    schedules: { minIntervalSec: config.schedules.minIntervalSec, poke: () => scheduleRunner.poke() },
  };
  metrics.attachSources({
    jobCounts: () => store.summarizeJobs({}, ['status', 'vo']),
    taskQueues: () => store.listTaskQueues({}),
    parkedOffers: () => matchService.parkedCount,
    connectedPilots: () => registry.size,
  });
  const router = new Router({
    tokens,
    logger: logger.child({ module: 'http' }),
    onAnswered: (method, route, status, seconds) => metrics.httpAnswered(method, route, status, seconds),
  });
  for (const route of [
    ...jobRoutes(routeDeps),
    ...jobOperationRoutes(routeDeps),
    ...jobPriorityRoutes(routeDeps),
    ...jobSearchRoutes(routeDeps),
    ...operationsRoutes(routeDeps),
    ...jobReportRoutes(routeDeps),
    ...sandboxRoutes(routeDeps),
    ...authRoutes(routeDeps),
    ...loginRoutes(routeDeps),
    ...jobEventRoutes(routeDeps),
    ...webAppRoutes(defaultWebRoot()),
    ...adminRoutes(routeDeps),
    ...pilotRoutes(routeDeps),
    ...pilotRecordRoutes(routeDeps),
    ...siteDirectorRoutes(routeDeps),
    ...matchingRoutes(routeDeps),
    ...policyRoutes(routeDeps),
    ...taskQueueRoutes(routeDeps),
    ...scheduleRoutes(routeDeps),
    ...apiDocsRoutes(() => router.routes()),
  ])
    router.add(route);
  router.add({
    method: 'GET',
    path: PILOT_CONNECT_PATH,
    policy: 'pilot',
    summary: 'the pilot WebSocket (upgrade only)',
    handler: async () => {
      throw new PilothouseError(
        'UPGRADE_REQUIRED',
        `${PILOT_CONNECT_PATH} is the pilot WebSocket: connect with an upgrade`,
      );
    },
  });

  // Network silence and frame rates are real time: a monotonic clock, not the matcher's (which tests move).
  const monotonicClock: Clock = { nowMs: () => performance.now() };
  const liveness = new ConnectionLiveness(config.pilotLiveness, { clock: monotonicClock });
  const connectionQuota = new ConnectionQuota(config.limits.maxConnectionsPerToken);
  let shuttingDown = false;
  const sessionDeps = {
    liveness,
    presence,
    store,
    pilots,
    activity: pilotActivity,
    matchService,
    registry,
    tokens,
    clock,
    logger: logger.child({ module: 'pilots' }),
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    jobTokenGraceSec: config.jobTokenGraceSec,
    frameRate: { framesPerSec: config.limits.framesPerSec, burst: config.limits.frameBurst },
    maxFrameBytes: config.limits.maxFrameBytes,
    monotonicClock,
    stopping: () => shuttingDown,
    metrics,
    undelivered: new UndeliveredMatches({
      store,
      clock,
      logger: logger.child({ module: 'pilots' }),
      maxAttempts: config.faultSweeper.maxAttempts,
      jobsReturned: (taskQueueIds) => cluster.jobsWaiting(taskQueueIds),
    }),
  };
  const sessions = new Set<PilotSession>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.limits.maxFrameBytes });
  // Stopping: new requests and upgrades get SHUTTING_DOWN; those already running finish first.
  const inFlight = new Set<Promise<void>>();
  const onRequest = (req: IncomingMessage, res: import('node:http').ServerResponse): void => {
    if (shuttingDown) {
      res.setHeader('connection', 'close');
      void sendError(
        res,
        new PilothouseError('SHUTTING_DOWN', 'the matcher is stopping: retry on another replica or later'),
      );
      return;
    }
    const handled = router.handle(req, res).finally(() => inFlight.delete(handled));
    inFlight.add(handled);
  };
  const server: Server = config.tls
    ? createHttpsServer({ cert: config.tls.cert, key: config.tls.key, minVersion: 'TLSv1.2' }, onRequest)
    : createServer(onRequest);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void acceptPilot(req, socket, head);
  });

  async function acceptPilot(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    try {
      if (shuttingDown)
        throw new PilothouseError('SHUTTING_DOWN', 'the matcher is stopping: connect to another replica');
      const url = requestUrl(req);
      if (url === null) throw new PilothouseError('BAD_PATH', 'the request target is not a valid URL path');
      if (url.pathname !== PILOT_CONNECT_PATH) {
        refuseUpgrade(socket, 404, { code: 'ROUTE_NOT_FOUND', message: `no WebSocket at ${url.pathname}` });
        return;
      }
      const principal = await router.authenticate(req, 'pilot');
      if (!principal) throw new Error('the pilot endpoint cannot be public');
      // Released when the TCP socket closes, whether or not the upgrade completed.
      socket.once('close', connectionQuota.acquire(principal.tokenId));
      wss.handleUpgrade(req, socket, head, (ws) => {
        const session = new PilotSession(ws, principal, sessionDeps, socket);
        sessions.add(session);
        ws.once('close', () => void session.drained().then(() => sessions.delete(session)));
      });
    } catch (thrown) {
      const error = toAnswerError(thrown);
      refuseUpgrade(socket, error.httpStatus, error.toJSON());
    }
  }

  server.listen(config.port, config.host);
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const hostForUrl = config.host.includes(':') ? `[${config.host}]` : config.host;
  const scheme = config.tls ? 'https' : 'http';
  const url = `${scheme}://${hostForUrl === '0.0.0.0' ? '127.0.0.1' : hostForUrl}:${port}`;
  logger.info(
    {
      url,
      dataDir: config.dataDir,
      db: describeStoreLocation(config.db),
      tls: config.tls !== null,
      oidcIssuers: externalIssuers?.size ?? 0,
    },
    'matcher listening',
  );

  if (!config.tls && !/^(127\.|::1$|localhost$)/.test(config.host)) {
    logger.warn(
      { host: config.host },
      'plain http on a non-loopback address: tokens and pilot secrets cross the network in clear (use --tls-cert/--tls-key)',
    );
  }

  const maintenanceLogger = logger.child({ module: 'maintenance' });
  let maintaining: Promise<void> | null = null;
  const maintain = (): Promise<void> => {
    maintaining ??= (async () => {
      try {
        const { rotated, dropped } = await keys.maintain(config.keyRotationAgeMs);
        const purged = await credentials.purgeExpired(clock.nowMs());
        const purgedLogin = await loginStore.purgeExpired(clock.nowMs());
        const purgedAny = Object.values({ ...purged, ...purgedLogin }).some((count) => count > 0);
        if (rotated || dropped.length > 0 || purgedAny) {
          maintenanceLogger.info({ rotated: rotated?.kid, dropped, purged, purgedLogin }, 'credential maintenance');
        }
        await ensureAdminToken(config, tokens, adminTokenPath, maintenanceLogger);
      } catch (error) {
        maintenanceLogger.error({ err: error }, 'credential maintenance failed');
      } finally {
        maintaining = null;
      }
    })();
    return maintaining;
  };
  const maintenanceTimer = setInterval(() => void maintain(), config.keyMaintenanceIntervalMs);
  maintenanceTimer.unref();

  const faultSweeper = new FaultSweeper({
    store,
    clock,
    logger: logger.child({ module: 'fault-sweeper' }),
    isPilotConnected: async (pilotId) => registry.isConnected(pilotId) || (await presence.pilotConnected(pilotId)),
    jobsReturned: (taskQueueIds) => cluster.jobsWaiting(taskQueueIds),
    options: config.faultSweeper,
  });
  let sweeping: Promise<void> | null = null;
  const sweepFaults = (): Promise<void> => {
    // One replica sweeps at a time: the others skip the round.
    sweeping ??= presence
      .runExclusive('fault-sweeper', async () => {
        await faultSweeper.sweep();
      })
      .then(() => undefined)
      .catch((error: unknown) => logger.error({ err: error }, 'fault sweep failed'))
      .finally(() => {
        sweeping = null;
      });
    return sweeping;
  };
  const sweepTimer = setInterval(() => void sweepFaults(), config.faultSweepIntervalMs);
  sweepTimer.unref();

  const retentionSweeper = new RetentionSweeper({
    store,
    activity: pilotActivity,
    sandboxes,
    clock,
    logger: logger.child({ module: 'retention' }),
    options: config.retention,
  });
  let purging: Promise<RetentionReport | null> | null = null;
  const sweepRetention = (): Promise<RetentionReport | null> => {
    // One replica purges at a time: the others skip the round (and answer null).
    purging ??= (async () => {
      let report: RetentionReport | null = null;
      try {
        await presence.runExclusive('retention', async () => {
          report = await retentionSweeper.sweep();
        });
      } catch (error) {
        logger.error({ err: error }, 'retention sweep failed');
      } finally {
        purging = null;
      }
      return report;
    })();
    return purging;
  };
  const retentionTimer = setInterval(() => void sweepRetention(), config.retention.sweepIntervalMs);
  retentionTimer.unref();
  scheduleRunner.start();

  let stopping: Promise<void> | null = null;
  return {
    url,
    port,
    store,
    matchService,
    credentials,
    pilotActivity,
    pilots,
    tokens,
    pilotCredentials,
    keys,
    router,
    adminTokenPath,
    httpServer: server,
    maintain,
    sweepFaults,
    sweepRetention,
    stop() {
      stopping ??= (async () => {
        clearInterval(maintenanceTimer);
        clearInterval(sweepTimer);
        clearInterval(retentionTimer);
        clearInterval(presenceTimer);
        await scheduleRunner.stop();
        await maintaining;
        await sweeping;
        clearInterval(refreshTimer);
        clearInterval(shareSyncTimer);
        liveness.stop();
        shuttingDown = true;
        // 1012 (service restart): pilots reconnect, to another replica or to this one once it is back.
        for (const client of wss.clients) client.close(1012, 'SHUTTING_DOWN');
        wss.close();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // Writes already under way finish (requests and the frames each session had received).
        await settleWithin([...inFlight, ...[...sessions].map((session) => session.drained())], config.shutdownGraceMs);
        server.closeAllConnections();
        await closed;
        await syncShares(); // the last matches' usage reaches the other replicas
        await stores.close();
        logger.info('matcher stopped');
      })();
      return stopping;
    },
  };
}

function refuseUpgrade(socket: Duplex, status: number, error: object): void {
  const body = JSON.stringify({ error });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}

/**
 * Keeps `<dataDir>/admin.token` (mode 0600) usable: written on first start, and rewritten when it no
 * longer verifies (expired, key revoked or dropped, token revoked) or has less than half its life left.
 */
async function ensureAdminToken(
  config: MatcherConfig,
  tokens: TokenService,
  adminTokenPath: string,
  logger: Logger,
): Promise<void> {
  const existing = await readFile(adminTokenPath, 'utf8').catch(() => null);
  if (existing !== null) {
    try {
      const principal = await tokens.verify(existing.trim());
      const halfLifeMs = (config.adminTokenTtlSec * 1000) / 2;
      if (principal.expiresAtMs - Date.now() > halfLifeMs) return;
    } catch {
      // not valid any more: replaced below
    }
  }
  const token = await tokens.issue({
    kind: 'user',
    subject: 'admin',
    vo: config.defaultVo,
    group: 'admin',
    properties: ['NormalUser', 'JobAdministrator', 'ServiceAdministrator'],
    ttlSec: config.adminTokenTtlSec,
  });
  const temp = `${adminTokenPath}.${randomUUID().slice(0, 8)}.tmp`;
  await writeFile(temp, `${token}\n`, { mode: 0o600, flag: 'wx' });
  await rename(temp, adminTokenPath);
  logger.info({ path: adminTokenPath, renewed: existing !== null }, 'admin token written');
}

/** Waits for every promise to settle, or for `timeoutMs`, whichever comes first. */
async function settleWithin(promises: Promise<unknown>[], timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled(promises),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
}
