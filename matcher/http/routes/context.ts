import type { StoredPolicy } from '../../matching/stored-policy.ts';
import { PilothouseError } from '../../../shared/errors.ts';
import type { Clock } from '../../../shared/clock.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { KeyRing } from '../../auth/key-ring.ts';
import type { PilotCredentialService } from '../../auth/pilot-credentials.ts';
import type { TokenService } from '../../auth/tokens.ts';
import type { CredentialStore } from '../../store/credential-store.ts';
import type { FailureLimiter } from '../failure-limiter.ts';
import type { MatchService } from '../../matching/match-service.ts';
import type { SandboxStore } from '../../sandbox/sandbox-store.ts';
import type { JobStore } from '../../store/job-store.ts';
import type { PilotActivityStore } from '../../store/pilot-activity-store.ts';
import type { PilotStore } from '../../store/pilot-store.ts';
import type { PilotBundle } from '../../pilot-bundle/pilot-bundle.ts';
import type { PilotRegistry } from '../../ws/pilot-registry.ts';
import type { ClusterSignals } from '../../cluster/cluster-signals.ts';
import type { MatcherLimits } from '../../limits.ts';
import type { MatcherMetrics } from '../../metrics/matcher-metrics.ts';
import type { LoginDeps } from './login.ts';

/** What route handlers may use; built once by the server. */
export interface RouteDeps {
  store: JobStore;
  /** Pilot logs, drain requests, exit records, usage from heartbeats. */
  pilotActivity: PilotActivityStore;
  /** Pilot records: registration by site directors, batch-system and pilot statuses, output. */
  pilots: PilotStore;
  /** dist/pilot.mjs, served to pilot wrappers. */
  pilotBundle: PilotBundle;
  sandboxes: SandboxStore;
  matchService: MatchService;
  registry: PilotRegistry;
  /** Events other replicas must hear about (wake-ups, commands, drains, revocations, the site mask). */
  cluster: ClusterSignals;
  keys: KeyRing;
  tokens: TokenService;
  credentials: CredentialStore;
  pilotCredentials: PilotCredentialService;
  /** Throttles addresses that keep failing the pilot-token exchange. */
  exchangeLimiter: FailureLimiter;
  clock: Clock;
  logger: Logger;
  /** What one client may send (see limits.ts). */
  limits: MatcherLimits;
  /** Attempts a job may have in all (user reschedules count too). */
  maxAttempts: number;
  /** This matcher among its replicas (told by /healthz, so an operator sees who answered). */
  replicaId: string;
  /** Null while the store can work; else why not (then /healthz answers 503 STORE_UNAVAILABLE). */
  storeFault(): string | null;
  /** The deployment all replicas belong to (the data directory and the database agree on it). */
  clusterId: string;
  /** The scheduling policy kept in the store for every replica. */
  storedPolicy: StoredPolicy;
  /** Prometheus metrics of this matcher (served at /metrics). */
  metrics: MatcherMetrics;
  /** User sign-in (device flow, code flow with PKCE) and the tokens it issues. */
  login: LoginDeps;
  /** True once the matcher is stopping (then /readyz answers 503). */
  stopping(): boolean;
  /** Recurring jobs: the shortest interval allowed, and the runner to wake when one is made or resumed. */
  schedules: { minIntervalSec: number; poke(): void };
}

export function parseId(raw: string | undefined, field: string): number {
  const id = Number(raw);
  if (!Number.isSafeInteger(id) || id <= 0 || String(id) !== raw) {
    throw new PilothouseError('VALIDATION_FAILED', `${field} must be a positive integer`, { field });
  }
  return id;
}

/** An integer query parameter within [min, max], or `fallback` when absent (else BAD_QUERY naming it). */
export function queryInt(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = query.get(name);
  if (raw === null || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new PilothouseError('BAD_QUERY', `${name} must be an integer in [${min}, ${max}]`, { field: name });
  }
  return value;
}
