/**
 * One site director: its CEs' backends, its throttles, and the cycle. A cycle
 *  1. registers pilots whose registration had to wait (the matcher was away);
 *  2. follows its pilots at their CEs (monitor.ts);
 *  3. asks the matcher, in one call, what every (queue, VO) could run and how many pilots are there;
 *  4. decides per queue (decide.ts, with the throttles) and submits (submit.ts), CEs in parallel
 *     up to `parallelCes`, each CE's calls bounded by `ceTimeoutMs`, so a slow CE holds up no other;
 *  5. leaves a report with the matcher (`pilothouse site-director status`) and returns it.
 * A matcher that cannot be reached pauses the cycle: nothing is submitted blind, and the next cycle
 * resumes. Errors of one CE are that CE's (backoff), never the cycle's.
 */
import { toPilothouseError } from '../shared/errors.ts';
import { delay } from '../shared/backoff.ts';
import { DEFAULT_CANCEL_GRACE_SEC } from './backends/factory.ts';
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type {
  CeState,
  DemandAnswer,
  DemandQueue,
  DirectorReport,
  PilotRegistration,
  QueueDecision,
} from '../shared/protocol/site-director.ts';
import type { CeBackend } from './backends/backend.ts';
import type { CeConfig, DirectorConfig, QueueConfig } from './config/load.ts';
import { decideQueue, type VoDemand } from './decide.ts';
import type { DirectorMatcherClient } from './matcher-client.ts';
import { mapLimit } from './map-limit.ts';
import { monitorPilots, type MonitorResult } from './monitor.ts';
import { submitPilots } from './submit.ts';
import { Throttles } from './throttles.ts';

export interface DirectorDeps {
  config: DirectorConfig;
  matcher: DirectorMatcherClient;
  /** The matcher as worker nodes reach it (config pilotMatcherUrl, else the director's --matcher). */
  pilotMatcherUrl: string;
  backends: ReadonlyMap<string, CeBackend>;
  clock: Clock;
  logger: Logger;
}

const NO_COUNTS = { waiting: 0, running: 0, unknown: 0 };

export class SiteDirector {
  readonly #deps: DirectorDeps;
  readonly throttles: Throttles;
  readonly #pendingRegistrations: PilotRegistration[] = [];
  readonly #stop = new AbortController();
  #cycle = 0;

  constructor(deps: DirectorDeps) {
    this.#deps = deps;
    this.throttles = new Throttles(deps.config.throttles, deps.clock);
  }

  get name(): string {
    return this.#deps.config.name;
  }

  /** Aborts CE calls under way (used when the service stops). */
  abort(): void {
    this.#stop.abort(new Error('the site director is stopping'));
  }

  async runCycle(): Promise<DirectorReport> {
    const { config, matcher, clock } = this.#deps;
    this.#cycle += 1;
    const startedMs = clock.nowMs();
    const logger = this.#deps.logger.child({ cycle: this.#cycle });
    const report = (fields: Partial<DirectorReport>): DirectorReport => ({
      director: config.name,
      cycle: this.#cycle,
      startedAt: new Date(startedMs).toISOString(),
      durationMs: clock.nowMs() - startedMs,
      matcherReachable: true,
      queues: [],
      ces: this.#ceStates(),
      pilotsTracked: 0,
      statusUpdates: 0,
      outputsFetched: 0,
      ...fields,
    });
    let monitored: MonitorResult;
    let answers: Map<string, DemandAnswer>;
    let bundleSha256: string | null = null;
    try {
      await this.#registerPending();
      monitored = await monitorPilots(config.name, {
        matcher,
        backends: this.#deps.backends,
        throttles: this.throttles,
        clock,
        logger,
        parallelCes: config.parallelCes,
        ceTimeoutMs: config.ceTimeoutMs,
        lostAfterMs: config.lostAfterMs,
        signal: this.#stop.signal,
      });
      const demand = await matcher.demand(this.#demandQueues());
      answers = new Map(demand.queues.map((answer) => [answer.key, answer]));
      bundleSha256 = await matcher
        .bundleInfo()
        .then((info) => info.sha256)
        .catch((error: unknown) => {
          logger.error({ err: toPilothouseError(error).message }, 'the matcher serves no pilot bundle: no submission');
          return null;
        });
    } catch (thrown) {
      const error = toPilothouseError(thrown);
      logger.warn({ code: error.code, err: error.message }, 'cycle paused: the matcher cannot be used');
      return report({ matcherReachable: false, queues: this.#idleDecisions(`paused: ${error.message}`) });
    }

    const decisions: QueueDecision[] = [];
    await mapLimit(config.ces, config.parallelCes, async (ce) => {
      decisions.push(...(await this.#serveCe(ce, answers, bundleSha256)));
    });
    const order = new Map(this.#demandQueues().map((q, index) => [q.key, index]));
    decisions.sort((a, b) => (order.get(a.key) ?? 0) - (order.get(b.key) ?? 0));
    const final = report({
      queues: decisions,
      pilotsTracked: monitored.tracked,
      statusUpdates: monitored.updates,
      outputsFetched: monitored.outputsFetched,
    });
    await matcher.report(final).catch((error: unknown) => {
      logger.warn({ err: toPilothouseError(error).message }, 'cycle report not delivered');
    });
    const submitted = decisions.reduce((sum, d) => sum + d.submitted, 0);
    logger.info({ durationMs: final.durationMs, submitted, tracked: monitored.tracked }, 'cycle done');
    return final;
  }

  async #serveCe(
    ce: CeConfig,
    answers: Map<string, DemandAnswer>,
    bundleSha256: string | null,
  ): Promise<QueueDecision[]> {
    const backend = this.#deps.backends.get(ce.key);
    const decisions: QueueDecision[] = [];
    let ceFailed = false;
    for (const queue of ce.queues) {
      const demands: VoDemand[] = queue.vos.map((vo) => {
        const answer = answers.get(demandKey(queue, vo));
        return {
          vo,
          pilotsNeeded: answer?.pilotsNeeded ?? null,
          waitingJobs: answer?.waitingJobs ?? null,
          pilots: answer?.pilots ?? NO_COUNTS,
        };
      });
      const throttles = this.throttles.activeFor(ce.key, queue.key);
      if (bundleSha256 === null) throttles.push('the matcher serves no pilot bundle');
      if (ceFailed) throttles.push('the CE failed earlier in this cycle');
      for (const decision of decideQueue(queue.caps, demands, throttles)) {
        const demand = demands.find((d) => d.vo === decision.vo) as VoDemand;
        let submitted = 0;
        let failed = 0;
        let reason = decision.reason;
        if (decision.submit > 0 && backend && bundleSha256 !== null) {
          const result = await submitPilots(ce, queue, decision.vo, decision.submit, backend, {
            director: this.#deps.config.name,
            matcher: this.#deps.matcher,
            clock: this.#deps.clock,
            logger: this.#deps.logger,
            pilotMatcherUrl: this.#deps.pilotMatcherUrl,
            bundleSha256,
            secretTtlSec: this.#deps.config.secretTtlSec,
            ceTimeoutMs: this.#deps.config.ceTimeoutMs,
            signal: this.#stop.signal,
            pendingRegistrations: this.#pendingRegistrations,
          });
          submitted = result.submitted;
          failed = result.failed;
          if (result.error) {
            reason = `${reason}; submission failed: ${result.error.message}`;
            const code = toPilothouseError(result.error).code;
            if (code.startsWith('CE_')) {
              this.throttles.ceFailed(ce.key, result.error);
              ceFailed = true;
            }
          } else if (submitted > 0) this.throttles.ceSucceeded(ce.key);
        }
        decisions.push({
          key: demandKey(queue, decision.vo),
          site: ce.site,
          ce: ce.name,
          queue: queue.name,
          vo: decision.vo,
          waitingJobs: demand.waitingJobs,
          pilotsNeeded: demand.pilotsNeeded,
          pilots: demand.pilotsNeeded === null ? null : demand.pilots,
          caps: queue.caps,
          throttles: throttles.slice(0, 20),
          submitted,
          failed,
          reason: reason.slice(0, 2048),
        });
      }
    }
    return decisions;
  }

  #demandQueues(): DemandQueue[] {
    return this.#deps.config.ces.flatMap((ce) =>
      ce.queues.flatMap((queue) =>
        queue.vos.map((vo) => ({
          key: demandKey(queue, vo),
          vo,
          site: ce.site,
          ce: ce.name,
          queue: queue.name,
          slot: queue.slot,
        })),
      ),
    );
  }

  #idleDecisions(reason: string): QueueDecision[] {
    return this.#deps.config.ces.flatMap((ce) =>
      ce.queues.flatMap((queue) =>
        queue.vos.map((vo) => ({
          key: demandKey(queue, vo),
          site: ce.site,
          ce: ce.name,
          queue: queue.name,
          vo,
          waitingJobs: null,
          pilotsNeeded: null,
          pilots: null,
          caps: queue.caps,
          throttles: [],
          submitted: 0,
          failed: 0,
          reason: reason.slice(0, 2048),
        })),
      ),
    );
  }

  #ceStates(): CeState[] {
    const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
    return this.#deps.config.ces.map((ce) => {
      const state = this.throttles.ceState(ce.key);
      return {
        site: ce.site,
        ce: ce.name,
        backend: ce.type,
        consecutiveErrors: state.consecutiveErrors,
        backedOffUntil: iso(state.backedOffUntilMs),
        lastError: state.lastError?.slice(0, 2048) ?? null,
        missedPilotsInWindow: state.missedInWindow,
        throttledUntil: iso(state.throttledUntilMs),
      };
    });
  }

  async #registerPending(): Promise<void> {
    if (this.#pendingRegistrations.length === 0) return;
    const pending = this.#pendingRegistrations.splice(0);
    try {
      await this.#deps.matcher.registerPilots(this.#deps.config.name, pending);
    } catch (error) {
      this.#pendingRegistrations.unshift(...pending);
      throw error;
    }
  }

  /** Cancels every tracked pilot on local backends (for `pilothouse up` when it stops). */
  async cancelLocalPilots(): Promise<number> {
    const tracked = await this.#deps.matcher.trackedPilots(this.#deps.config.name);
    let cancelled = 0;
    for (const [key, backend] of this.#deps.backends) {
      if (!backend.capabilities.local) continue;
      const refs = tracked
        .filter((p) => `${p.site}/${p.ce ?? ''}` === key && p.backendRef !== null)
        .map((p) => ({ stamp: p.id, ref: p.backendRef as string }));
      await backend.cancel(refs, AbortSignal.timeout(this.#deps.config.ceTimeoutMs));
      cancelled += refs.length;
      // They drain and say bye while the matcher still listens: wait for them, within their grace.
      const deadline = this.#deps.clock.nowMs() + (DEFAULT_CANCEL_GRACE_SEC + 5) * 1000;
      while (refs.length > 0 && this.#deps.clock.nowMs() < deadline) {
        const statuses = await backend.status(refs, AbortSignal.timeout(this.#deps.config.ceTimeoutMs));
        if (![...statuses.values()].some((s) => s.status === 'Running')) break;
        await delay(200);
      }
    }
    return cancelled;
  }
}

export function demandKey(queue: QueueConfig, vo: string): string {
  return `${queue.key}#${vo}`;
}
