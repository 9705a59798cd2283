/**
 * Matcher options: raw values (flags, environment) are compiled once into MatcherConfig, with
 * defaults filled in and units in the names. Nothing else in the matcher reads process.env.
 */
import {
  DEFAULT_SCHEDULE_MIN_INTERVAL_SEC,
  DEFAULT_SCHEDULE_POLL_MS,
  DEFAULT_SCHEDULE_WINDOW_SEC,
} from './schedules/schedule-runner.ts';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import { PilothouseError } from '../shared/errors.ts';
import { MAX_WALL_TIME_SEC } from '../shared/job/description.ts';
import { readOidcConfig, type OidcConfig } from './auth/oidc.ts';
import { DEFAULT_FAULT_SWEEPER_OPTIONS, type FaultSweeperOptions } from './maintenance/fault-sweeper.ts';
import { compileRetention, type RawRetentionOptions, type RetentionOptions } from './maintenance/retention-sweeper.ts';
import type { PilotCredentialLimits } from './auth/pilot-credentials.ts';
import { defaultPilotBundlePath } from './pilot-bundle/pilot-bundle.ts';
import { parseStoreLocation, type StoreLocation } from './store/location.ts';
import { compileLimits, type MatcherLimits, type RawLimits } from './limits.ts';

/** Pilots send a heartbeat this often; DIRAC's 30 min made stall detection take 75 min. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 30_000;
/** A job token outlives the job's wall time by this much (uploads after the payload ends). */
export const DEFAULT_JOB_TOKEN_GRACE_SEC = 3_600;
/** How often the in-memory task-queue index is re-read from the store (other replicas, drift). */
export const DEFAULT_TASK_QUEUE_REFRESH_MS = 5_000;
export const DEFAULT_FAULT_SWEEP_INTERVAL_MS = 60_000;
/** A pilot connection that answers nothing (pings included) this long is dropped; pinged 3 times in it. */
export const DEFAULT_PILOT_TIMEOUT_MS = 30_000;
/** On stop, requests and pilot frames already received get this long to finish their writes. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
/** How often fair-share usage is exchanged with the other matchers sharing the store. */
export const DEFAULT_SHARE_SYNC_INTERVAL_MS = 1_000;
/**
 * The admin token (`<dataDir>/admin.token`): rewritten at start and by the maintenance tick when it has
 * less than half its life left or its key no longer verifies.
 */
export const DEFAULT_ADMIN_TOKEN_TTL_SEC = 7 * 86_400;
/**
 * The longest life of any token the matcher signs: a job token covers the longest wall time plus its
 * grace. It is also how long a key keeps verifying after a rotation (then it is deleted).
 */
export const DEFAULT_MAX_TOKEN_TTL_SEC = MAX_WALL_TIME_SEC + DEFAULT_JOB_TOKEN_GRACE_SEC;
/** How often keys are reloaded, retired keys dropped, expired credentials purged, rotation checked. */
export const DEFAULT_KEY_MAINTENANCE_INTERVAL_MS = 30_000;
/** The pilot credential lifetimes (see matcher/auth/pilot-credentials.ts). */
export const DEFAULT_PILOT_CREDENTIAL_LIMITS: PilotCredentialLimits = {
  accessTokenTtlSec: 20 * 60,
  refreshTokenTtlSec: 86_400,
  maxPilotLifetimeSec: 7 * 86_400,
  defaultSecretTtlSec: 3 * 86_400,
  maxSecretTtlSec: 14 * 86_400,
};
/** Failed pilot-token exchanges tolerated per address and window before RATE_LIMITED. */
export const DEFAULT_EXCHANGE_MAX_FAILURES = 20;
export const DEFAULT_EXCHANGE_FAILURE_WINDOW_MS = 60_000;

export interface RawMatcherConfig extends RawLimits, RawRetentionOptions {
  dataDir: string;
  listen?: string | undefined;
  db?: string | undefined;
  heartbeatIntervalSec?: number | undefined;
  defaultVo?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  /** Default: `<dataDir>/oidc.json` when it exists. */
  oidcConfig?: string | undefined;
  /** The matcher's URL as users' browsers reach it (sign-in redirects); default: each request's Host. */
  publicUrl?: string | undefined;
  /** Rotate the signing key automatically once it is this old (off when absent). */
  keyRotationAgeSec?: number | undefined;
  /** A held job silent this long is Stalled (default 600). */
  stalledAfterSec?: number | undefined;
  /** Attempts a job may have in all, reschedules included (default 4). */
  maxAttempts?: number | undefined;
  /** The pilot bundle served to pilot wrappers (default: dist/pilot.mjs beside the program). */
  pilotBundle?: string | undefined;
  /** How often task queues and the site mask are re-read from the store (default 5). */
  taskQueueRefreshSec?: number | undefined;
  pilotTimeoutSec?: number | undefined;
  reconnectGraceSec?: number | undefined;
  /** A job Matched this long to a connected pilot that never starts it is rescheduled (default 7200). */
  matchedTimeoutSec?: number | undefined;
  /** How often the fault sweeper looks for stalled, stuck and rescheduled jobs (default 60). */
  faultSweepIntervalSec?: number | undefined;
  /** Holds before a rescheduled job waits again, by reschedule count, e.g. "60,180,300,600" (the last repeats). */
  rescheduleDelaysSec?: string | undefined;
  /** Schedules firing more often than this are refused (default 5). */
  scheduleMinIntervalSec?: number | undefined;
  /** How late a schedule's slot may still fire; older ones are missed (default 60). */
  scheduleWindowSec?: number | undefined;
}

export interface TlsMaterial {
  certPath: string;
  cert: string;
  key: string;
}

export interface MatcherConfig {
  dataDir: string;
  host: string;
  port: number;
  /** Where the stores live: a SQLite file (one matcher) or a PostgreSQL database (replicas). */
  db: StoreLocation;
  heartbeatIntervalMs: number;
  jobTokenGraceSec: number;
  /** What one client may send (sizes, rates, counts): see limits.ts. */
  limits: MatcherLimits;
  adminTokenTtlSec: number;
  taskQueueRefreshMs: number;
  shareSyncIntervalMs: number;
  /** WebSocket liveness of pilot connections (see ConnectionLiveness). */
  pilotLiveness: { pingIntervalMs: number; timeoutMs: number };
  /** The VO of the admin token written on first start. */
  defaultVo: string;
  /** Serve https/wss with this certificate; null = plain http/ws. */
  tls: TlsMaterial | null;
  /** External OIDC issuers trusted for user tokens (and their sign-in); null = none. */
  oidc: OidcConfig | null;
  /** The matcher's URL as users' browsers reach it, without a trailing slash; null = from each request. */
  publicUrl: string | null;
  keyRotationAgeMs: number | null;
  keyMaintenanceIntervalMs: number;
  maxTokenTtlSec: number;
  pilotCredentials: PilotCredentialLimits;
  exchangeMaxFailures: number;
  exchangeFailureWindowMs: number;
  /** Stalled jobs, stuck matches and rescheduling (see FaultSweeper); swept every `faultSweepIntervalMs`. */
  faultSweeper: FaultSweeperOptions;
  faultSweepIntervalMs: number;
  /** How long finished jobs, unused sandboxes and pilot logs are kept (see RetentionSweeper). */
  retention: RetentionOptions;
  /** The WAL is checkpointed on a worker thread (see WalCheckpointer). */
  walCheckpoint: { intervalMs: number; restartAboveFrames: number; holdTimeoutMs: number };
  /** dist/pilot.mjs as served at /api/pilot-bundle; null = none found (the route answers 503). */
  pilotBundlePath: string | null;
  /** On stop, how long requests and pilot frames already received may take to finish. */
  shutdownGraceMs: number;
  /** Recurring jobs (see ScheduleRunner). */
  schedules: { minIntervalSec: number; windowMs: number; pollMs: number };
}

/**
 * Passive checkpoints every 50 ms; a catch-up once the WAL passes 65,536 pages (256 MiB at 4 KiB). A
 * catch-up holds writes for about one fsync (~13 ms here); at 8,192 pages they came five times a
 * second under full load and set the match p99 (20 ms against 17 ms, BENCHMARKS.md).
 */
export const DEFAULT_WAL_CHECKPOINT = { intervalMs: 50, restartAboveFrames: 65_536, holdTimeoutMs: 1000 } as const;

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[2]);
  if (!match?.[1] || !Number.isInteger(port) || port > 65_535) {
    throw new PilothouseError('CONFIG_INVALID', `--listen must be HOST:PORT (e.g. 127.0.0.1:8080), got "${listen}"`, {
      field: 'listen',
    });
  }
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

export function compileMatcherConfig(raw: RawMatcherConfig): MatcherConfig {
  if (!raw.dataDir) throw new PilothouseError('CONFIG_INVALID', '--data-dir is required', { field: 'dataDir' });
  const dataDir = path.resolve(raw.dataDir);
  const { host, port } = parseListen(raw.listen ?? '127.0.0.1:8080');
  const db = parseStoreLocation(raw.db, dataDir);
  const heartbeatIntervalSec = raw.heartbeatIntervalSec ?? DEFAULT_HEARTBEAT_INTERVAL_MS / 1000;
  if (!(heartbeatIntervalSec > 0)) {
    throw new PilothouseError('CONFIG_INVALID', '--heartbeat-interval-sec must be positive', {
      field: 'heartbeatIntervalSec',
    });
  }
  const taskQueueRefreshSec = raw.taskQueueRefreshSec ?? DEFAULT_TASK_QUEUE_REFRESH_MS / 1000;
  if (!(taskQueueRefreshSec >= 0.1)) {
    throw new PilothouseError('CONFIG_INVALID', '--task-queue-refresh-sec must be at least 0.1', {
      field: 'taskQueueRefreshSec',
    });
  }
  const pilotTimeoutSec = raw.pilotTimeoutSec ?? DEFAULT_PILOT_TIMEOUT_MS / 1000;
  if (!(pilotTimeoutSec >= 0.3)) {
    throw new PilothouseError('CONFIG_INVALID', '--pilot-timeout-sec must be at least 0.3', {
      field: 'pilotTimeoutSec',
    });
  }
  const pilotTimeoutMs = Math.round(pilotTimeoutSec * 1000);
  return {
    dataDir,
    host,
    port,
    db,
    heartbeatIntervalMs: Math.round(heartbeatIntervalSec * 1000),
    jobTokenGraceSec: DEFAULT_JOB_TOKEN_GRACE_SEC,
    limits: compileLimits(raw),
    adminTokenTtlSec: DEFAULT_ADMIN_TOKEN_TTL_SEC,
    taskQueueRefreshMs: Math.round(taskQueueRefreshSec * 1000),
    shareSyncIntervalMs: DEFAULT_SHARE_SYNC_INTERVAL_MS,
    pilotLiveness: { pingIntervalMs: Math.round(pilotTimeoutMs / 3), timeoutMs: pilotTimeoutMs },
    walCheckpoint: { ...DEFAULT_WAL_CHECKPOINT },
    faultSweeper: compileFaultSweeper(raw, heartbeatIntervalSec),
    faultSweepIntervalMs: compileSweepInterval(raw.faultSweepIntervalSec),
    retention: compileRetention(raw),
    defaultVo: raw.defaultVo ?? 'local',
    tls: compileTls(raw.tlsCert, raw.tlsKey),
    oidc: compileOidc(raw.oidcConfig, dataDir),
    publicUrl: compilePublicUrl(raw.publicUrl),
    keyRotationAgeMs: compileRotationAge(raw.keyRotationAgeSec),
    keyMaintenanceIntervalMs: DEFAULT_KEY_MAINTENANCE_INTERVAL_MS,
    maxTokenTtlSec: DEFAULT_MAX_TOKEN_TTL_SEC,
    pilotCredentials: DEFAULT_PILOT_CREDENTIAL_LIMITS,
    exchangeMaxFailures: DEFAULT_EXCHANGE_MAX_FAILURES,
    exchangeFailureWindowMs: DEFAULT_EXCHANGE_FAILURE_WINDOW_MS,
    pilotBundlePath: compilePilotBundle(raw.pilotBundle),
    shutdownGraceMs: DEFAULT_SHUTDOWN_GRACE_MS,
    schedules: compileSchedules(raw),
  };
}

function compileSchedules(raw: RawMatcherConfig): MatcherConfig['schedules'] {
  const minIntervalSec = raw.scheduleMinIntervalSec ?? DEFAULT_SCHEDULE_MIN_INTERVAL_SEC;
  if (!Number.isInteger(minIntervalSec) || minIntervalSec < 1) {
    throw new PilothouseError(
      'CONFIG_INVALID',
      '--schedule-min-interval-sec must be a whole number of seconds, at least 1',
      {
        field: 'scheduleMinIntervalSec',
      },
    );
  }
  const windowSec = raw.scheduleWindowSec ?? DEFAULT_SCHEDULE_WINDOW_SEC;
  if (!(windowSec >= 0)) {
    throw new PilothouseError('CONFIG_INVALID', '--schedule-window-sec must be 0 or more', {
      field: 'scheduleWindowSec',
    });
  }
  return { minIntervalSec, windowMs: Math.round(windowSec * 1000), pollMs: DEFAULT_SCHEDULE_POLL_MS };
}

function compilePilotBundle(file: string | undefined): string | null {
  if (file === undefined) return defaultPilotBundlePath();
  const resolved = path.resolve(file);
  if (!existsSync(resolved)) {
    throw new PilothouseError('CONFIG_INVALID', `--pilot-bundle: ${resolved} does not exist`, { field: 'pilotBundle' });
  }
  return resolved;
}

function compileTls(certPath: string | undefined, keyPath: string | undefined): TlsMaterial | null {
  if (certPath === undefined && keyPath === undefined) return null;
  if (certPath === undefined || keyPath === undefined) {
    throw new PilothouseError('CONFIG_INVALID', '--tls-cert and --tls-key go together', {
      field: certPath === undefined ? 'tlsCert' : 'tlsKey',
    });
  }
  const read = (file: string, field: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      throw new PilothouseError('CONFIG_INVALID', `cannot read ${file}: ${(error as Error).message}`, { field });
    }
  };
  const material = { certPath: path.resolve(certPath), cert: read(certPath, 'tlsCert'), key: read(keyPath, 'tlsKey') };
  try {
    createSecureContext({ cert: material.cert, key: material.key });
  } catch (error) {
    throw new PilothouseError(
      'CONFIG_INVALID',
      `--tls-cert/--tls-key: not a usable certificate and matching private key (${(error as Error).message})`,
      { field: 'tlsCert' },
    );
  }
  return material;
}

function compileOidc(file: string | undefined, dataDir: string): OidcConfig | null {
  if (file !== undefined) return readOidcConfig(path.resolve(file));
  const inDataDir = path.join(dataDir, 'oidc.json');
  return existsSync(inDataDir) ? readOidcConfig(inDataDir) : null;
}

function compilePublicUrl(raw: string | undefined): string | null {
  if (raw === undefined) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new PilothouseError('CONFIG_INVALID', `--public-url must be an http(s) URL, got "${raw}"`, {
      field: 'publicUrl',
    });
  }
  if (!/^https?:$/.test(url.protocol) || url.search !== '' || url.hash !== '') {
    throw new PilothouseError(
      'CONFIG_INVALID',
      `--public-url must be an http(s) URL without query or fragment, got "${raw}"`,
      {
        field: 'publicUrl',
      },
    );
  }
  return url.toString().replace(/\/$/, '');
}

function compileRotationAge(seconds: number | undefined): number | null {
  if (seconds === undefined) return null;
  if (!Number.isFinite(seconds) || seconds < 60) {
    throw new PilothouseError('CONFIG_INVALID', '--key-rotation-age-sec must be at least 60', {
      field: 'keyRotationAgeSec',
    });
  }
  return Math.round(seconds * 1000);
}

function compileFaultSweeper(raw: RawMatcherConfig, heartbeatIntervalSec: number): FaultSweeperOptions {
  const options = { ...DEFAULT_FAULT_SWEEPER_OPTIONS };
  if (raw.stalledAfterSec !== undefined) {
    // Fewer than three missed heartbeats would stall healthy jobs on a busy node.
    if (!Number.isFinite(raw.stalledAfterSec) || raw.stalledAfterSec < 3 * heartbeatIntervalSec) {
      throw new PilothouseError(
        'CONFIG_INVALID',
        `--stalled-after-sec must be at least three heartbeat intervals (${3 * heartbeatIntervalSec} s), got ${raw.stalledAfterSec}`,
        { field: 'stalledAfterSec' },
      );
    }
    options.stalledAfterSec = raw.stalledAfterSec;
  }
  if (raw.maxAttempts !== undefined) {
    if (!Number.isInteger(raw.maxAttempts) || raw.maxAttempts < 1) {
      throw new PilothouseError('CONFIG_INVALID', `--max-attempts must be a whole number ≥ 1, got ${raw.maxAttempts}`, {
        field: 'maxAttempts',
      });
    }
    options.maxAttempts = raw.maxAttempts;
  }
  options.reconnectGraceSec = secondsAtLeast(raw.reconnectGraceSec, 0, 'reconnectGraceSec', options.reconnectGraceSec);
  // Shorter would take jobs from healthy pilots still fetching a large input sandbox.
  options.matchedTimeoutSec = secondsAtLeast(raw.matchedTimeoutSec, 60, 'matchedTimeoutSec', options.matchedTimeoutSec);
  if (raw.rescheduleDelaysSec !== undefined) options.rescheduleDelaysSec = parseDelays(raw.rescheduleDelaysSec);
  return options;
}

/** A duration option (`field` in camelCase, its flag in kebab-case): its default when not given. */
function secondsAtLeast(value: number | undefined, min: number, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < min) {
    const flag = `--${field.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
    throw new PilothouseError('CONFIG_INVALID', `${flag} must be a number of seconds ≥ ${min}, got ${value}`, {
      field,
    });
  }
  return value;
}

function parseDelays(raw: string): number[] {
  const parts = raw.split(',').map((part) => part.trim());
  const delays = parts.map(Number);
  const malformed = parts.some((part) => !/^\d+(\.\d+)?$/.test(part));
  if (malformed || delays.length > 100 || delays.some((delay) => delay > 86_400)) {
    throw new PilothouseError(
      'CONFIG_INVALID',
      `--reschedule-delays-sec must be a comma-separated list of seconds between 0 and 86400, got "${raw}"`,
      { field: 'rescheduleDelaysSec' },
    );
  }
  return delays;
}

function compileSweepInterval(seconds: number | undefined): number {
  if (seconds === undefined) return DEFAULT_FAULT_SWEEP_INTERVAL_MS;
  if (!Number.isFinite(seconds) || seconds < 0.1 || seconds > 3600) {
    throw new PilothouseError(
      'CONFIG_INVALID',
      `--fault-sweep-interval-sec must be between 0.1 and 3600 seconds, got ${seconds}`,
      { field: 'faultSweepIntervalSec' },
    );
  }
  return Math.round(seconds * 1000);
}
