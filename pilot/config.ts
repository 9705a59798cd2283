/**
 * Pilot configuration: raw command-line options (strings, as commander hands them over) plus the
 * environment are compiled ONCE into a `PilotConfig` whose fields carry their units. Nothing else in
 * the pilot reads `process.env` or argv. Every refusal is a CONFIG_INVALID error naming the flag.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { PilothouseError } from '../shared/errors.ts';
import type { BackoffOptions } from '../shared/backoff.ts';
import { PLATFORM_PATTERN } from '../shared/job/platform.ts';
import { MEMORY_LIMIT_POLICIES, type MemoryLimitPolicy } from './watchdog.ts';
import { ISOLATION_CHOICES, type IsolationChoice } from './isolation.ts';

/** Default idle timeout: five minutes without work is long enough to catch a burst of submissions. */
export const DEFAULT_IDLE_TIMEOUT_SEC = 300;
export const DEFAULT_SITE = 'Local.localhost';
export const DEFAULT_WORKDIR = './pilothouse-work';
/** A measured CPU power is reused by the node's next pilots for a day (0 = every pilot measures). */
export const DEFAULT_CPU_POWER_CACHE_SEC = 86_400;
/** How long a report that does not end its job waits for the next ones, to leave in one frame. */
export const DEFAULT_REPORT_COALESCE_MS = 500;
/** Offers keep this much time back so that a job's wall time never runs into the batch system's kill. */
export const DEFAULT_OFFER_WALL_TIME_MARGIN_SEC = 60;
/** Below this many seconds left (after the margin) an offer is pointless: the pilot stops asking. */
export const DEFAULT_MIN_OFFER_WALL_TIME_SEC = 60;
/** SIGTERM first, SIGKILL after this grace: long enough for a payload to flush its files. */
export const DEFAULT_KILL_GRACE_MS = 10_000;
/** How often the payload's application-status file is read. */
export const DEFAULT_APP_STATUS_POLL_MS = 3_000;
/** Output sandboxes larger than this (compressed) are refused, as DIRAC limits sandbox size. */
export const DEFAULT_MAX_OUTPUT_SANDBOX_BYTES = 100 * 1024 * 1024;
/** Input sandboxes: caps on the download, the unpacked bytes and the number of entries. */
export const DEFAULT_MAX_INPUT_SANDBOX_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_MAX_UNPACKED_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_MAX_UNPACKED_ENTRIES = 100_000;
/** Sandbox uploads/downloads are retried this many times (with backoff) before the job fails... */
export const DEFAULT_TRANSFER_ATTEMPTS = 4;
/** ...or for this long, whichever is longer: an output upload outlives a matcher restart. */
export const DEFAULT_TRANSFER_RETRY_WINDOW_MS = 15 * 60_000;
/** Running jobs have this long to finish after a drain (SIGTERM, drain file, drain command). */
export const DEFAULT_DRAIN_GRACE_SEC = 600;
/** A node-wide drain file (DIRAC's is /var/lib/dirac_drain): while it exists no pilot takes work. */
export const DEFAULT_DRAIN_FILE = '/var/lib/pilothouse/drain';
export const DEFAULT_DRAIN_FILE_POLL_MS = 5_000;
/** A job whose process tree used less than 1 % of a core for this long is stalled (0 = no check). */
export const DEFAULT_STALL_TIMEOUT_SEC = 1_800;
export const DEFAULT_STALL_MIN_CPU_PERCENT = 1;
/** Below this much free disk in the working area the watchdog stops the job that wrote the most. */
export const DEFAULT_MIN_FREE_DISK_MB = 100;
export const DEFAULT_WATCHDOG_INTERVAL_SEC = 5;
/** Job directories are measured this often (heartbeats carry the figure). */
export const DEFAULT_DISK_CHECK_INTERVAL_MS = 30_000;
/** How often the batch system is asked again about the slot's end. */
export const DEFAULT_TIME_LEFT_REFRESH_MS = 5 * 60_000;
/** Jobs still running this close to the slot's end are killed, so that their final reports get out. */
export const DEFAULT_SLOT_END_MARGIN_MS = 30_000;
/** How long a cancelled offer may stay unconfirmed before the pilot stops waiting for it. */
export const DEFAULT_OFFER_CANCEL_TIMEOUT_MS = 10_000;
/** How long the pilot keeps trying to deliver its last reports before exiting anyway. */
export const DEFAULT_FINAL_FLUSH_TIMEOUT_MS = 120_000;
/** A parked offer with a finite wall time is renewed this often (its margin covers the drift). */
export const DEFAULT_OFFER_REFRESH_MS = 60_000;
export const DEFAULT_RECONNECT_BACKOFF: BackoffOptions = { initialDelayMs: 500, maxDelayMs: 30_000, jitter: 0.5 };
/** Uids handed to jobs by a root pilot (no account needed; keep clear of real users and subuid ranges). */
export const DEFAULT_JOB_UIDS = '700000-700999';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The options as commander parses them (every value still a string). */
export interface RawPilotOptions {
  matcher?: string;
  tokenFile?: string;
  secretFile?: string;
  caFile?: string;
  site?: string;
  ce?: string;
  queue?: string;
  stamp?: string;
  workdir?: string;
  cores?: string;
  memoryMb?: string;
  wallTimeSec?: string;
  tags?: string;
  requiredTags?: string;
  platform?: string;
  gpus?: string;
  diskMb?: string;
  wholeNode?: boolean;
  cpuPower?: string;
  cpuPowerCacheSec?: string;
  reportCoalesceMs?: string;
  idleTimeoutSec?: string;
  drainFile?: string;
  drainGraceSec?: string;
  stallTimeoutSec?: string;
  stallMinCpuPercent?: string;
  memoryLimitPolicy?: string;
  minDiskFreeMb?: string;
  watchdogIntervalSec?: string;
  killGraceSec?: string;
  maxInputSandboxMb?: string;
  maxUnpackedMb?: string;
  maxOutputSandboxMb?: string;
  keepWorkdirs?: boolean;
  isolation?: string;
  isolationRoPaths?: string;
  jobUids?: string;
  logLevel?: string;
}

export interface PilotConfig {
  /** Matcher base URLs (http/https), without a trailing slash: the first, then the next when it is unreachable. */
  matcherUrls: string[];
  /** The first of them (for logs). */
  matcherUrl: string;
  /** The WebSocket endpoint of the first (ws/wss + /api/pilots/connect). */
  connectUrl: string;
  /** The pilot token given with --token-file / PILOTHOUSE_TOKEN; null when a secret is exchanged. */
  pilotToken: string | null;
  /** The one-time pilot secret from --secret-file, exchanged for a pilot token at start; else null. */
  pilotSecret: string | null;
  /** CA bundle (PEM) that verifies an https/wss matcher (--ca-file); null = Node's default roots. */
  caPem: string | null;
  pilotStamp: string;
  site: string;
  ce: string | null;
  queue: string | null;
  /** Absolute path. */
  workdir: string;
  /** The slot as the site declared it (--cores, --memory-mb), over what the probe found; null = what the node gives. */
  coresLimit: number | null;
  memoryMBLimit: number | null;
  /** Seconds the pilot may live from its start; null = unknown/unlimited (the batch system may say more). */
  wallTimeSec: number | null;
  tags: string[];
  /** Only jobs carrying every one of these tags may come (e.g. a GPU queue's GPU jobs). */
  requiredTags: string[];
  /** Declared platform (`x86_64-v3`); null = detected. */
  platform: string | null;
  /** How many GPUs to offer: at most this many of those detected (declared ones fill up when fewer are seen); null = all detected. */
  gpus: number | null;
  /** Scratch disk to offer at most, MB; null = what the working area has free. */
  diskMBLimit: number | null;
  /** The slot is a whole node (the queue gives whole nodes): idle offers say so. */
  wholeNode: boolean;
  /** Declared CPU power per core (skips the benchmark); null = measure. */
  cpuPower: number | null;
  /** How long a measured CPU power is reused by the next pilots on this node, ms; 0 = always measure. */
  cpuPowerCacheMs: number;
  reportCoalesceMs: number;
  /** Where it is kept (per user, in the temporary directory). */
  cpuPowerCacheFile: string;
  /** Null = no drain file. */
  drainFile: string | null;
  drainFilePollMs: number;
  drainGraceMs: number;
  stallTimeoutMs: number;
  stallMinCpuRatio: number;
  memoryLimitPolicy: MemoryLimitPolicy;
  minFreeDiskMB: number;
  watchdogIntervalMs: number;
  diskCheckIntervalMs: number;
  timeLeftRefreshMs: number;
  slotEndMarginMs: number;
  transferRetryWindowMs: number;
  idleTimeoutMs: number;
  keepWorkdirs: boolean;
  /** How payloads are isolated (pilot/isolation.ts); `auto` takes the strongest this node offers. */
  isolation: IsolationChoice;
  /** Extra directories (absolute) a container shows read-only, e.g. a shared data area. */
  isolationReadOnlyPaths: string[];
  /** Uids a root pilot hands to its jobs, inclusive. */
  jobUids: { first: number; last: number };
  logLevel: (typeof LOG_LEVELS)[number];
  offerWallTimeMarginSec: number;
  minOfferWallTimeSec: number;
  killGraceMs: number;
  appStatusPollMs: number;
  maxOutputSandboxBytes: number;
  maxInputSandboxBytes: number;
  maxUnpackedBytes: number;
  maxUnpackedEntries: number;
  transferAttempts: number;
  offerCancelTimeoutMs: number;
  finalFlushTimeoutMs: number;
  offerRefreshMs: number;
  reconnectBackoff: BackoffOptions;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$/;
const STAMP = /^[A-Za-z0-9_.-]{1,64}$/;

export function compilePilotConfig(
  raw: RawPilotOptions,
  env: NodeJS.ProcessEnv = {},
  cwd = process.cwd(),
): PilotConfig {
  // A path prefix (a matcher behind a reverse proxy) is kept for both REST and WebSocket routes.
  // Several comma-separated URLs: replicas (or load balancers) tried in turn when one is unreachable.
  const matcherUrls = (raw.matcher ?? '')
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => parseMatcherUrl(part).toString().replace(/\/+$/, ''));
  if (matcherUrls.length === 0) parseMatcherUrl(undefined);
  const matcherUrl = matcherUrls[0] as string;
  const connectUrl = `${matcherUrl.replace(/^http/, 'ws')}/api/pilots/connect`;

  return {
    matcherUrls,
    matcherUrl,
    connectUrl,
    ...readCredential(raw, env),
    caPem: raw.caFile === undefined ? null : readCaFile(raw.caFile),
    pilotStamp: parseStamp(raw.stamp ?? env['PILOTHOUSE_PILOT_STAMP']),
    site: parseName('--site', raw.site ?? DEFAULT_SITE),
    ce: raw.ce === undefined ? null : parseName('--ce', raw.ce),
    queue: raw.queue === undefined ? null : parseName('--queue', raw.queue),
    workdir: path.resolve(cwd, nonEmpty('--workdir', raw.workdir ?? DEFAULT_WORKDIR)),
    coresLimit: integerOr('--cores', raw.cores, null, 1, 100_000),
    memoryMBLimit: integerOr('--memory-mb', raw.memoryMb, null, 1, 1 << 30),
    wallTimeSec: integerOr('--wall-time-sec', raw.wallTimeSec, null, 1, 10 * 365 * 86_400),
    tags: parseTags(raw.tags),
    requiredTags: parseTags(raw.requiredTags, '--required-tags'),
    platform: raw.platform === undefined ? null : parsePlatformOption(raw.platform),
    gpus: integerOr('--gpus', raw.gpus, null, 0, 64),
    diskMBLimit: integerOr('--disk-mb', raw.diskMb, null, 0, 1 << 40),
    wholeNode: raw.wholeNode === true,
    cpuPower: raw.cpuPower === undefined ? null : parsePositive('--cpu-power', raw.cpuPower),
    cpuPowerCacheMs:
      1000 * integerOr('--cpu-power-cache-sec', raw.cpuPowerCacheSec, DEFAULT_CPU_POWER_CACHE_SEC, 0, 30 * 86_400),
    reportCoalesceMs: integerOr('--report-coalesce-ms', raw.reportCoalesceMs, DEFAULT_REPORT_COALESCE_MS, 0, 60_000),
    cpuPowerCacheFile: path.join(os.tmpdir(), `pilothouse-cpu-power-${process.getuid?.() ?? 'user'}.json`),
    drainFile: parseDrainFile(raw.drainFile, cwd),
    drainFilePollMs: DEFAULT_DRAIN_FILE_POLL_MS,
    drainGraceMs: 1000 * integerOr('--drain-grace-sec', raw.drainGraceSec, DEFAULT_DRAIN_GRACE_SEC, 0, 30 * 86_400),
    stallTimeoutMs:
      1000 * integerOr('--stall-timeout-sec', raw.stallTimeoutSec, DEFAULT_STALL_TIMEOUT_SEC, 0, 30 * 86_400),
    stallMinCpuRatio:
      (raw.stallMinCpuPercent === undefined
        ? DEFAULT_STALL_MIN_CPU_PERCENT
        : parsePercent('--stall-min-cpu-percent', raw.stallMinCpuPercent)) / 100,
    memoryLimitPolicy: parseChoice('--memory-limit-policy', raw.memoryLimitPolicy ?? 'kill', MEMORY_LIMIT_POLICIES),
    minFreeDiskMB: integerOr('--min-disk-free-mb', raw.minDiskFreeMb, DEFAULT_MIN_FREE_DISK_MB, 0, 1 << 30),
    watchdogIntervalMs:
      1000 * integerOr('--watchdog-interval-sec', raw.watchdogIntervalSec, DEFAULT_WATCHDOG_INTERVAL_SEC, 1, 3600),
    diskCheckIntervalMs: DEFAULT_DISK_CHECK_INTERVAL_MS,
    timeLeftRefreshMs: DEFAULT_TIME_LEFT_REFRESH_MS,
    slotEndMarginMs: DEFAULT_SLOT_END_MARGIN_MS,
    transferRetryWindowMs: DEFAULT_TRANSFER_RETRY_WINDOW_MS,
    idleTimeoutMs: 1000 * integerOr('--idle-timeout-sec', raw.idleTimeoutSec, DEFAULT_IDLE_TIMEOUT_SEC, 0, 30 * 86_400),
    keepWorkdirs: raw.keepWorkdirs === true,
    isolation: parseChoice('--isolation', raw.isolation ?? 'auto', ISOLATION_CHOICES),
    isolationReadOnlyPaths: parseAbsolutePaths('--isolation-ro-paths', raw.isolationRoPaths),
    jobUids: parseUidRange(raw.jobUids ?? DEFAULT_JOB_UIDS),
    logLevel: parseLogLevel(raw.logLevel),
    offerWallTimeMarginSec: DEFAULT_OFFER_WALL_TIME_MARGIN_SEC,
    minOfferWallTimeSec: DEFAULT_MIN_OFFER_WALL_TIME_SEC,
    killGraceMs:
      raw.killGraceSec === undefined
        ? DEFAULT_KILL_GRACE_MS
        : 1000 * parseInteger('--kill-grace-sec', raw.killGraceSec, 0, 3600),
    appStatusPollMs: DEFAULT_APP_STATUS_POLL_MS,
    maxOutputSandboxBytes: megabytes(
      '--max-output-sandbox-mb',
      raw.maxOutputSandboxMb,
      DEFAULT_MAX_OUTPUT_SANDBOX_BYTES,
    ),
    maxInputSandboxBytes: megabytes('--max-input-sandbox-mb', raw.maxInputSandboxMb, DEFAULT_MAX_INPUT_SANDBOX_BYTES),
    maxUnpackedBytes: megabytes('--max-unpacked-mb', raw.maxUnpackedMb, DEFAULT_MAX_UNPACKED_BYTES),
    maxUnpackedEntries: DEFAULT_MAX_UNPACKED_ENTRIES,
    transferAttempts: DEFAULT_TRANSFER_ATTEMPTS,
    offerCancelTimeoutMs: DEFAULT_OFFER_CANCEL_TIMEOUT_MS,
    finalFlushTimeoutMs: DEFAULT_FINAL_FLUSH_TIMEOUT_MS,
    offerRefreshMs: DEFAULT_OFFER_REFRESH_MS,
    reconnectBackoff: DEFAULT_RECONNECT_BACKOFF,
  };
}

function invalid(field: string, message: string): PilothouseError {
  return new PilothouseError('CONFIG_INVALID', `${field}: ${message}`, { field });
}

function parseMatcherUrl(value: string | undefined): URL {
  if (value === undefined || value.trim() === '')
    throw invalid('--matcher', 'the matcher URL is required (e.g. https://matcher.example.org:8443)');
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw invalid('--matcher', `'${value}' is not a URL (expected http(s)://host:port)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalid('--matcher', `'${value}' must start with http:// or https://`);
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw invalid('--matcher', `'${value}' must not carry credentials, a query or a fragment`);
  }
  return url;
}

function readToken(tokenFile: string | undefined, env: NodeJS.ProcessEnv): string {
  let token: string | undefined;
  if (tokenFile !== undefined) {
    try {
      token = readFileSync(tokenFile, 'utf8');
    } catch (error) {
      throw invalid(
        '--token-file',
        `cannot read ${tokenFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      );
    }
    token = token.trim();
    if (token === '') throw invalid('--token-file', `${tokenFile} is empty`);
  } else {
    token = env['PILOTHOUSE_TOKEN']?.trim();
    if (token === undefined || token === '') {
      throw invalid('--token-file', 'no pilot token: pass --token-file or set PILOTHOUSE_TOKEN');
    }
  }
  if (/\s/.test(token)) throw invalid('--token-file', 'the token must be a single word (no whitespace inside)');
  return token;
}

/** --token-file (or PILOTHOUSE_TOKEN), or --secret-file: a secret is bound to one stamp, so it needs --stamp. */
function readCredential(
  raw: RawPilotOptions,
  env: NodeJS.ProcessEnv,
): { pilotToken: string | null; pilotSecret: string | null } {
  if (raw.secretFile === undefined) return { pilotToken: readToken(raw.tokenFile, env), pilotSecret: null };
  if (raw.tokenFile !== undefined) throw invalid('--secret-file', 'give --token-file or --secret-file, not both');
  if ((raw.stamp ?? env['PILOTHOUSE_PILOT_STAMP'] ?? '') === '') {
    throw invalid(
      '--secret-file',
      'a pilot secret is bound to one pilot: give its --stamp (or PILOTHOUSE_PILOT_STAMP)',
    );
  }
  let secret: string;
  try {
    secret = readFileSync(raw.secretFile, 'utf8').trim();
  } catch (error) {
    throw invalid(
      '--secret-file',
      `cannot read ${raw.secretFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  if (secret === '' || /\s/.test(secret))
    throw invalid('--secret-file', `${raw.secretFile} must hold one secret (one word)`);
  return { pilotToken: null, pilotSecret: secret };
}

function readCaFile(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    throw invalid('--ca-file', `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw invalid('--ca-file', `${file} holds no PEM certificate`);
  return pem;
}

function parseStamp(value: string | undefined): string {
  if (value === undefined || value === '') return randomUUID().replaceAll('-', '');
  if (!STAMP.test(value)) throw invalid('--stamp', `'${value}' must be 1-64 letters, digits, '_', '.' or '-'`);
  return value;
}

function parseName(field: string, value: string): string {
  if (!NAME.test(value))
    throw invalid(field, `'${value}' must be 1-128 letters, digits and _.:@+- (starting with a letter or digit)`);
  return value;
}

function nonEmpty(field: string, value: string): string {
  if (value.trim() === '') throw invalid(field, 'must not be empty');
  return value;
}

/** An option's whole number, or `fallback` when the option was not given. */
function integerOr<T extends number | null>(
  field: string,
  value: string | undefined,
  fallback: T,
  min: number,
  max: number,
): number | T {
  return value === undefined ? fallback : parseInteger(field, value, min, max);
}

function parseInteger(field: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value.trim())) throw invalid(field, `'${value}' is not a whole number`);
  const n = Number(value.trim());
  if (!Number.isSafeInteger(n) || n < min || n > max) throw invalid(field, `${value} is out of range [${min}, ${max}]`);
  return n;
}

function parseTags(value: string | undefined, field = '--tags'): string[] {
  if (value === undefined) return [];
  const tags = value
    .split(',')
    .map((tag) => tag.trim())
    .filter((tag) => tag !== '');
  for (const tag of tags) parseName(field, tag);
  return [...new Set(tags)];
}

function parsePlatformOption(value: string): string {
  if (!PLATFORM_PATTERN.test(value)) {
    throw invalid(
      '--platform',
      `'${value}' is not ARCH or ARCH-vLEVEL (e.g. x86_64-v3; ARCH: x86_64, aarch64, ppc64le, riscv64)`,
    );
  }
  return value.includes('-v') ? value : `${value}-v1`;
}

function parsePositive(field: string, value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1e6)
    throw invalid(field, `'${value}' is not a positive number`);
  return n;
}

function parsePercent(field: string, value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 100)
    throw invalid(field, `'${value}' is not a percentage in [0, 100]`);
  return n;
}

function parseChoice<T extends string>(field: string, value: string, choices: readonly T[]): T {
  const choice = choices.find((candidate) => candidate === value);
  if (choice === undefined) throw invalid(field, `'${value}' is not one of ${choices.join(', ')}`);
  return choice;
}

function megabytes(field: string, value: string | undefined, fallbackBytes: number): number {
  return value === undefined ? fallbackBytes : parseInteger(field, value, 1, 1 << 30) * 1024 * 1024;
}

/** `none` (or empty) turns the drain file off; a relative path is taken from the current directory. */
function parseDrainFile(value: string | undefined, cwd: string): string | null {
  if (value === undefined) return DEFAULT_DRAIN_FILE;
  if (value.trim() === '' || value === 'none') return null;
  return path.resolve(cwd, value);
}

function parseAbsolutePaths(field: string, value: string | undefined): string[] {
  if (value === undefined) return [];
  const paths = value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  for (const entry of paths) {
    if (!path.isAbsolute(entry) || path.normalize(entry) !== entry.replace(/\/+$/, '') || entry === '/')
      throw invalid(field, `'${entry}' must be an absolute, normalised path other than /`);
  }
  return paths;
}

function parseUidRange(value: string): { first: number; last: number } {
  const match = /^(\d+)-(\d+)$/.exec(value.trim());
  const first = Number(match?.[1]);
  const last = Number(match?.[2]);
  if (match === null || first < 1000 || last < first || last > 4_294_967_293) {
    throw invalid('--job-uids', `'${value}' must be FIRST-LAST with 1000 <= FIRST <= LAST (e.g. ${DEFAULT_JOB_UIDS})`);
  }
  return { first, last };
}

function parseLogLevel(value: string | undefined): PilotConfig['logLevel'] {
  if (value === undefined) return 'info';
  const level = LOG_LEVELS.find((candidate) => candidate === value);
  if (level === undefined) throw invalid('--log-level', `'${value}' is not one of ${LOG_LEVELS.join(', ')}`);
  return level;
}
