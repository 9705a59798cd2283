/**
 * The site director's side of the matcher's REST API. Every answer is checked against the shared
 * schemas before it is used (a proxy's error page, a different matcher version: CE-like hostility).
 * A matcher that cannot be reached is MATCHER_UNREACHABLE (retryable): the cycle pauses and resumes.
 */
import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { MatcherEndpoints, sendWithFailover } from '../shared/endpoints.ts';
import { PilothouseError, isErrorCode } from '../shared/errors.ts';
import { PILOT_STATUSES } from '../shared/pilot/status.ts';
import {
  BACKEND_TYPES,
  MAX_PILOTS_PER_REQUEST,
  demandResponseSchema,
  pilotBundleInfoSchema,
  type DemandQueue,
  type DemandResponse,
  type DirectorReport,
  type PilotOutput,
  type PilotRegistration,
  type PilotStatusUpdate,
} from '../shared/protocol/site-director.ts';

/** A pilot the director follows, as the matcher records it. */
export const trackedPilotSchema = z.looseObject({
  id: z.string(),
  vo: z.string(),
  site: z.string(),
  ce: z.string().nullable(),
  queue: z.string().nullable(),
  status: z.enum(PILOT_STATUSES),
  statusAt: z.string().nullable(),
  backend: z.enum(BACKEND_TYPES).nullable(),
  backendRef: z.string().nullable(),
  backendStatus: z.string().nullable(),
  connectedAt: z.string().nullable(),
  jobsMatched: z.int().min(0),
  submittedAt: z.string().nullable(),
});
export type TrackedPilot = z.infer<typeof trackedPilotSchema>;

const pilotPageSchema = z.looseObject({ total: z.int().min(0), pilots: z.array(trackedPilotSchema) });
const secretsSchema = z.looseObject({
  secrets: z.array(z.looseObject({ pilotStamp: z.string(), secret: z.string().min(1) })),
});
const bundleInfoSchema = pilotBundleInfoSchema.omit({ path: true });

export const DEFAULT_MATCHER_REQUEST_TIMEOUT_MS = 30_000;

export class DirectorMatcherClient {
  readonly #endpoints: MatcherEndpoints;
  readonly #token: () => string;
  readonly #dispatcher: Dispatcher | undefined;
  readonly #timeoutMs: number;

  /** `urls`: the matcher's addresses, used in turn when one cannot be reached (replicas, balancers). */
  constructor(options: {
    urls: readonly string[];
    token: () => string;
    caPem?: string | undefined;
    timeoutMs?: number;
  }) {
    this.#endpoints = new MatcherEndpoints(options.urls);
    this.#token = options.token;
    this.#dispatcher = options.caPem === undefined ? undefined : new Agent({ connect: { ca: options.caPem } });
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_MATCHER_REQUEST_TIMEOUT_MS;
  }

  async demand(queues: readonly DemandQueue[]): Promise<DemandResponse> {
    return this.#json('POST', '/api/queues/demand', { queues }, demandResponseSchema);
  }

  async bundleInfo(): Promise<{ sha256: string; sizeBytes: number }> {
    return this.#json('GET', '/api/pilot-bundle/info', undefined, bundleInfoSchema);
  }

  /** One secret per stamp, bound to the VO, the site and that stamp. */
  async mintSecrets(
    vo: string,
    site: string,
    stamps: readonly string[],
    ttlSec: number | null,
  ): Promise<Map<string, string>> {
    const answer = await this.#json(
      'POST',
      '/api/auth/pilot-secrets',
      { vo, site, pilotStamps: stamps, ...(ttlSec !== null && { ttlSec }) },
      secretsSchema,
    );
    const secrets = new Map(answer.secrets.map((entry) => [entry.pilotStamp, entry.secret]));
    if (stamps.some((stamp) => !secrets.has(stamp))) {
      throw new PilothouseError('INTERNAL', 'the matcher did not return a secret for every stamp');
    }
    return secrets;
  }

  async registerPilots(director: string, pilots: readonly PilotRegistration[]): Promise<void> {
    for (let i = 0; i < pilots.length; i += MAX_PILOTS_PER_REQUEST) {
      await this.#json(
        'POST',
        '/api/pilots',
        { director, pilots: pilots.slice(i, i + MAX_PILOTS_PER_REQUEST) },
        z.unknown(),
      );
    }
  }

  async updateStatuses(updates: readonly PilotStatusUpdate[]): Promise<void> {
    for (let i = 0; i < updates.length; i += MAX_PILOTS_PER_REQUEST) {
      await this.#json(
        'POST',
        '/api/pilots/status',
        { updates: updates.slice(i, i + MAX_PILOTS_PER_REQUEST) },
        z.unknown(),
      );
    }
  }

  async uploadOutput(stamp: string, output: PilotOutput): Promise<void> {
    await this.#json('PUT', `/api/pilots/${encodeURIComponent(stamp)}/output`, output, z.unknown());
  }

  /** Every pilot this director still follows (all pages). */
  async trackedPilots(director: string): Promise<TrackedPilot[]> {
    const pilots: TrackedPilot[] = [];
    for (let page = 1; ; page += 1) {
      const query = new URLSearchParams({
        director,
        tracked: 'true',
        sort: 'createdAt',
        order: 'asc',
        perPage: '1000',
        page: String(page),
      });
      const answer = await this.#json('GET', `/api/pilots?${query}`, undefined, pilotPageSchema);
      pilots.push(...answer.pilots);
      if (answer.pilots.length < 1000 || pilots.length >= answer.total) return pilots;
    }
  }

  async report(report: DirectorReport): Promise<void> {
    await this.#json('PUT', `/api/site-directors/${encodeURIComponent(report.director)}`, report, z.unknown());
  }

  async close(): Promise<void> {
    await this.#dispatcher?.close();
  }

  /** The matcher address in use (the next one after an unreachable one). */
  get baseUrl(): string {
    return this.#endpoints.base;
  }

  async #send(method: string, path: string, body: unknown): Promise<Dispatcher.ResponseData> {
    return sendWithFailover(this.#endpoints, (base) =>
      request(`${base}${path}`, {
        method: method as 'GET',
        headers: {
          authorization: `Bearer ${this.#token()}`,
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
        ...(this.#dispatcher && { dispatcher: this.#dispatcher }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      }),
    );
  }

  async #json<T>(method: string, path: string, body: unknown, schema: z.ZodType<T>): Promise<T> {
    const response = await this.#send(method, path, body);
    const text = await response.body.text().catch(() => '');
    let parsed: unknown = null;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      throw new PilothouseError(
        response.statusCode >= 500 ? 'MATCHER_UNREACHABLE' : 'VALIDATION_FAILED',
        `${method} ${path}: the matcher answered HTTP ${response.statusCode} with something that is not JSON`,
      );
    }
    if (response.statusCode >= 400) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
      const code = isErrorCode(error?.code)
        ? error.code
        : response.statusCode >= 500
          ? 'MATCHER_UNREACHABLE'
          : 'VALIDATION_FAILED';
      throw new PilothouseError(
        code,
        `${method} ${path}: ${typeof error?.message === 'string' ? error.message : `HTTP ${response.statusCode}`}`,
      );
    }
    const checked = schema.safeParse(parsed);
    if (!checked.success) {
      throw new PilothouseError(
        'VALIDATION_FAILED',
        `${method} ${path}: unexpected answer from the matcher: ${checked.error.issues[0]?.message ?? ''}`,
      );
    }
    return checked.data;
  }
}
