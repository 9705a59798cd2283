/**
 * ARC CE through the A-REX REST interface (1.0) over HTTPS, with the site's credentials: a client
 * certificate and key, or a bearer token file; the CE's CA bundle verifies the server.
 *  - submit: one xRSL document for the whole batch (`+(&…)(&…)`), then the wrapper of each pilot
 *    uploaded into its job's session directory (the job waits in PREPARING until then);
 *  - status: `POST jobs?action=status` for many ids at once; ended jobs' exit codes from `action=info`;
 *  - kill, and output (`pilot.out`/`pilot.err` from the session directory), then `action=clean`.
 * A-REX renders a one-element list as an object: answers are normalised. POST actions answer HTTP 201
 * and the real outcome is each job's own `status-code`.
 */
import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { PilothouseError } from '../../shared/errors.ts';
import { tailOf } from '../../shared/protocol/site-director.ts';
import { exitReason } from '../wrapper/exit-codes.ts';
import {
  OUTPUT_TAIL_BYTES,
  UNKNOWN_STATUS,
  type BackendStatus,
  type CeBackend,
  type FetchedOutput,
  type SubmitOutcome,
  type SubmitRequest,
  type SubmittedPilot,
} from './backend.ts';

export interface ArcOptions {
  /** e.g. https://arc.example.org:443/arex/rest/1.0 */
  url: string;
  caFile: string | null;
  certFile: string | null;
  keyFile: string | null;
  tokenFile: string | null;
  requestTimeoutMs: number;
}

const jobEntry = z.looseObject({
  'status-code': z.string().regex(/^\d{3}$/),
  reason: z.string().optional(),
  id: z.string().optional(),
  state: z.string().optional(),
});
const jobsAnswer = z.looseObject({ job: z.union([jobEntry, z.array(jobEntry)]) });
const infoEntry = jobEntry.extend({
  info_document: z
    .looseObject({
      ComputingActivity: z
        .looseObject({ ExitCode: z.string().optional(), Error: z.union([z.string(), z.array(z.string())]).optional() })
        .optional(),
    })
    .optional(),
});
const infoAnswer = z.looseObject({ job: z.union([infoEntry, z.array(infoEntry)]) });

const WAITING = new Set(['ACCEPTING', 'ACCEPTED', 'PREPARING', 'PREPARED', 'SUBMITTING', 'QUEUING', 'HELD']);
const RUNNING = new Set(['RUNNING', 'EXITINGLRMS', 'EXECUTED', 'FINISHING', 'OTHER']);
const CHUNK = 200;

export class ArcBackend implements CeBackend {
  readonly type = 'arc' as const;
  readonly capabilities = { maxPilotsPerSubmit: 50, fetchesOutput: true, local: false };
  readonly endpoint: string;
  readonly #options: ArcOptions;
  readonly #dispatcher: Dispatcher;
  readonly #headers: Record<string, string>;

  constructor(options: ArcOptions) {
    this.#options = options;
    this.endpoint = options.url;
    const read = (file: string | null): string | undefined => (file === null ? undefined : readFileSync(file, 'utf8'));
    this.#dispatcher = new Agent({
      connect: { ca: read(options.caFile), cert: read(options.certFile), key: read(options.keyFile) },
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
    });
    this.#headers = { accept: 'application/json' };
    if (options.tokenFile !== null) this.#headers.authorization = `Bearer ${read(options.tokenFile)?.trim() ?? ''}`;
  }

  xrsl(request: SubmitRequest): string {
    const r = request.resources;
    const quote = (value: string): string => `"${value.replaceAll('"', '""')}"`;
    const jobs = request.pilots.map((pilot) => {
      const parts = [
        '(executable="/bin/sh")',
        '(arguments="pilot.sh")',
        `(jobname=${quote(`pilothouse-${pilot.stamp}`)})`,
        '(inputfiles=("pilot.sh" ""))',
        '(stdout="pilot.out")(stderr="pilot.err")',
        '(outputfiles=("pilot.out" "")("pilot.err" ""))',
        `(environment=("PILOTHOUSE_PILOT_STAMP" ${quote(pilot.stamp)}))`,
        `(count=${r.cores})(countpernode=${r.cores})`,
      ];
      if (request.queue) parts.push(`(queue=${quote(request.queue)})`);
      // xRSL memory is per slot of `count`, in MB.
      if (r.memoryMB > 0) parts.push(`(memory=${Math.max(1, Math.ceil(r.memoryMB / r.cores))})`);
      if (r.wallTimeSec !== null) parts.push(`(walltime=${quote(`${Math.max(1, Math.ceil(r.wallTimeSec / 60))}`)})`);
      if (r.gpus > 0) parts.push(`(gpus=${r.gpus})`);
      return `(&${parts.join('')})`;
    });
    return jobs.length === 1 ? (jobs[0] as string).slice(1, -1) : `+${jobs.join('')}`;
  }

  async submit(submitRequest: SubmitRequest): Promise<SubmitOutcome> {
    let entries;
    try {
      const answer = await this.#call('POST', '/jobs?action=new', submitRequest.signal, {
        body: this.xrsl(submitRequest),
        contentType: 'application/rsl',
      });
      entries = normalise(parseAnswer(jobsAnswer, answer, this.endpoint).job);
    } catch (error) {
      return { submitted: [], error: error as Error };
    }
    const submitted: SubmittedPilot[] = [];
    let firstError: Error | null = null;
    const toKill: string[] = [];
    for (const [index, pilot] of submitRequest.pilots.entries()) {
      const entry = entries[index];
      if (!entry || entry['status-code'] !== '201' || !entry.id) {
        firstError ??= new PilothouseError(
          'CE_REFUSED',
          `${this.endpoint}: submission refused: ${entry?.reason ?? 'no answer for this job'}`,
        );
        continue;
      }
      try {
        await this.#call('PUT', `/jobs/${encodeURIComponent(entry.id)}/session/pilot.sh`, submitRequest.signal, {
          body: pilot.wrapper,
          contentType: 'application/octet-stream',
          expectJson: false,
        });
        submitted.push({ stamp: pilot.stamp, ref: entry.id });
      } catch (error) {
        firstError ??= error as Error;
        toKill.push(entry.id);
      }
    }
    if (toKill.length > 0) {
      await this.#action('kill', toKill, submitRequest.signal).catch(() => undefined);
    }
    return { submitted, error: firstError };
  }

  async status(refs: readonly SubmittedPilot[], signal: AbortSignal): Promise<Map<string, BackendStatus>> {
    const statuses = new Map<string, BackendStatus>();
    const ids = refs.map((ref) => ref.ref);
    for (let i = 0; i < ids.length; i += CHUNK) {
      const chunk = ids.slice(i, i + CHUNK);
      const entries = normalise(
        parseAnswer(jobsAnswer, await this.#action('status', chunk, signal), this.endpoint).job,
      );
      const ended: string[] = [];
      for (const entry of entries) {
        if (!entry.id) continue;
        if (entry['status-code'] === '404') {
          statuses.set(entry.id, UNKNOWN_STATUS);
          continue;
        }
        const state = (entry.state ?? '').toUpperCase();
        statuses.set(entry.id, mapArcState(state, null, ''));
        if (state === 'FAILED') ended.push(entry.id);
      }
      if (ended.length > 0) await this.#addExitCodes(ended, statuses, signal);
    }
    for (const id of ids) if (!statuses.has(id)) statuses.set(id, UNKNOWN_STATUS);
    return statuses;
  }

  /** A failed job's exit code and error text are in its GLUE2 info document. */
  async #addExitCodes(ids: string[], statuses: Map<string, BackendStatus>, signal: AbortSignal): Promise<void> {
    const entries = normalise(parseAnswer(infoAnswer, await this.#action('info', ids, signal), this.endpoint).job);
    for (const entry of entries) {
      const activity = entry.info_document?.ComputingActivity;
      if (!entry.id || !activity) continue;
      const exitCode =
        activity.ExitCode !== undefined && /^-?\d+$/.test(activity.ExitCode) ? Number(activity.ExitCode) : null;
      const error = Array.isArray(activity.Error) ? activity.Error.join('; ') : (activity.Error ?? '');
      statuses.set(entry.id, mapArcState('FAILED', exitCode, error));
    }
  }

  async cancel(refs: readonly SubmittedPilot[], signal: AbortSignal): Promise<void> {
    for (let i = 0; i < refs.length; i += CHUNK) {
      await this.#action(
        'kill',
        refs.slice(i, i + CHUNK).map((ref) => ref.ref),
        signal,
      );
    }
  }

  async fetchOutput(pilot: SubmittedPilot, signal: AbortSignal): Promise<FetchedOutput | null> {
    const read = async (name: string): Promise<string | null> => {
      const response = await this.#raw('GET', `/jobs/${encodeURIComponent(pilot.ref)}/session/${name}`, signal);
      const text = await response.body.text();
      if (response.statusCode === 404) return null;
      if (response.statusCode >= 400) throw httpError(this.endpoint, response.statusCode, text);
      return text;
    };
    const [stdout, stderr] = [await read('pilot.out'), await read('pilot.err')];
    if (stdout === null && stderr === null) return null;
    const out = tailOf(stdout ?? '', OUTPUT_TAIL_BYTES);
    const err = tailOf(stderr ?? '', OUTPUT_TAIL_BYTES);
    return { stdout: out.text, stderr: err.text, truncated: out.truncated || err.truncated };
  }

  refineFinalStatus(status: BackendStatus): BackendStatus {
    return status;
  }

  async clean(pilot: SubmittedPilot, signal: AbortSignal): Promise<void> {
    await this.#action('clean', [pilot.ref], signal);
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  async #action(
    action: 'status' | 'kill' | 'clean' | 'info',
    ids: readonly string[],
    signal: AbortSignal,
  ): Promise<unknown> {
    return this.#call('POST', `/jobs?action=${action}`, signal, {
      body: JSON.stringify({ job: ids.map((id) => ({ id })) }),
      contentType: 'application/json',
    });
  }

  async #raw(method: 'GET' | 'POST' | 'PUT', path: string, signal: AbortSignal, body?: string, contentType?: string) {
    try {
      return await request(`${this.#options.url}${path}`, {
        method,
        dispatcher: this.#dispatcher,
        headers: { ...this.#headers, ...(contentType && { 'content-type': contentType }) },
        ...(body !== undefined && { body }),
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.#options.requestTimeoutMs)]),
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const timedOut =
        error instanceof Error &&
        (error.name === 'TimeoutError' || error.name === 'AbortError' || /timeout/i.test(message));
      throw new PilothouseError(
        timedOut ? 'CE_TIMEOUT' : 'CE_UNREACHABLE',
        `${this.endpoint}: ${message}`,
        {},
        { cause: error },
      );
    }
  }

  async #call(
    method: 'POST' | 'PUT',
    path: string,
    signal: AbortSignal,
    options: { body: string; contentType: string; expectJson?: boolean },
  ): Promise<unknown> {
    const response = await this.#raw(method, path, signal, options.body, options.contentType);
    const text = await response.body.text();
    if (response.statusCode >= 400) throw httpError(this.endpoint, response.statusCode, text);
    if (options.expectJson === false) return null;
    try {
      return text.trim() === '' ? { job: [] } : (JSON.parse(text) as unknown);
    } catch {
      throw new PilothouseError(
        'CE_BAD_ANSWER',
        `${this.endpoint}: ${method} ${path}: not JSON: ${text.slice(0, 120)}`,
      );
    }
  }
}

function normalise<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

function parseAnswer<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success)
    throw new PilothouseError('CE_BAD_ANSWER', `${where}: unexpected answer: ${parsed.error.issues[0]?.message ?? ''}`);
  return parsed.data;
}

function httpError(where: string, status: number, text: string): PilothouseError {
  const code = status === 401 || status === 403 ? 'CE_REFUSED' : status >= 500 ? 'CE_BAD_ANSWER' : 'CE_REFUSED';
  return new PilothouseError(code, `${where}: HTTP ${status}${text.trim() ? `: ${text.trim().slice(0, 200)}` : ''}`);
}

export function mapArcState(state: string, exitCode: number | null, error: string): BackendStatus {
  if (WAITING.has(state))
    return {
      status: 'Waiting',
      native: state,
      reason: state === 'HELD' ? 'held by the CE' : state.toLowerCase(),
      exitCode: null,
    };
  if (RUNNING.has(state)) return { status: 'Running', native: state, reason: state.toLowerCase(), exitCode: null };
  switch (state) {
    case 'FINISHED':
      return { status: 'Done', native: state, reason: exitReason(0), exitCode: 0 };
    case 'FAILED': {
      const why = exitCode !== null ? exitReason(exitCode) : 'failed';
      return { status: 'Failed', native: state, reason: error ? `${why} (${error})` : why, exitCode };
    }
    case 'KILLING':
      return { status: 'Running', native: state, reason: 'being killed', exitCode: null };
    case 'KILLED':
      return { status: 'Aborted', native: state, reason: 'killed', exitCode: null };
    case 'WIPED':
      return { status: 'Aborted', native: state, reason: 'wiped by the CE', exitCode: null };
    case 'DELETED':
      return { status: 'Aborted', native: state, reason: 'deleted by the CE', exitCode: null };
    default:
      return { ...UNKNOWN_STATUS, native: state || 'None', reason: `unrecognised A-REX state ${state || '(none)'}` };
  }
}
