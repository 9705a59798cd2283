/**
 * The matcher's side of the cluster bus: each method does the local part of an event (wake parked
 * pilots, deliver a command to a pilot connected here, ...) and tells the other replicas, and events
 * from them get the local part only. Routes and sweepers call these instead of the registry or the
 * match service directly, so that no event is handled on one replica only.
 */
import type { Logger } from '../../shared/logger.ts';
import type { MatchService } from '../matching/match-service.ts';
import type { StoredPolicy } from '../matching/stored-policy.ts';
import type { PilotRegistry } from '../ws/pilot-registry.ts';
import type { ClusterBus, ClusterEvent } from './cluster-bus.ts';

export class ClusterSignals {
  readonly #bus: ClusterBus;
  readonly #matchService: MatchService;
  readonly #storedPolicy: StoredPolicy;
  readonly #registry: PilotRegistry;
  readonly #logger: Logger;

  constructor(deps: {
    bus: ClusterBus;
    matchService: MatchService;
    storedPolicy: StoredPolicy;
    registry: PilotRegistry;
    logger: Logger;
  }) {
    this.#bus = deps.bus;
    this.#matchService = deps.matchService;
    this.#storedPolicy = deps.storedPolicy;
    this.#registry = deps.registry;
    this.#logger = deps.logger;
    this.#bus.subscribe((event) => this.#received(event));
  }

  /** Jobs became waiting in these task queues (a submission, the end of a hold): wake parked pilots. */
  async jobsWaiting(taskQueueIds: readonly number[]): Promise<void> {
    if (taskQueueIds.length === 0) return;
    void this.#bus.publish({ type: 'jobs-waiting', taskQueueIds: [...taskQueueIds] });
    await this.#matchService.jobsSubmitted(taskQueueIds);
  }

  commandsQueued(pilotId: string, jobId: number, attempt: number): void {
    if (this.#registry.isConnected(pilotId)) this.#registry.notifyCommands(pilotId, jobId, attempt);
    else void this.#bus.publish({ type: 'commands', pilotId, jobId, attempt });
  }

  /** True when the pilot is connected here; otherwise the replica that holds it delivers the drain. */
  drainRequested(pilotId: string, reason: string): boolean {
    if (this.#registry.drain(pilotId, reason)) return true;
    void this.#bus.publish({ type: 'drain', pilotId, reason });
    return false;
  }

  credentialsChanged(): void {
    this.#registry.recheckCredentials();
    void this.#bus.publish({ type: 'credentials-changed' });
  }

  siteMaskChanged(): void {
    void this.#bus.publish({ type: 'site-mask-changed' });
  }

  /**
   * The scheduling policy was changed here (and applied): the other replicas apply it too, and parked
   * pilots are offered work again (a raised limit or a new share may give them some now).
   */
  policyChanged(): void {
    void this.#bus.publish({ type: 'policy-changed' });
    void this.#matchService.wake();
  }

  /** A TQ was paused, resumed or boosted, or its jobs' priorities changed: every replica re-reads it. */
  taskQueuesChanged(taskQueueIds: readonly number[]): Promise<void> {
    return this.jobsWaiting(taskQueueIds);
  }

  #received(event: ClusterEvent): void {
    switch (event.type) {
      case 'jobs-waiting':
        void this.#matchService.jobsSubmitted(event.taskQueueIds).catch((error: unknown) => {
          this.#logger.error({ err: error }, 'waking parked pilots for another replica failed');
        });
        return;
      case 'commands':
        this.#registry.notifyCommands(event.pilotId, event.jobId, event.attempt);
        return;
      case 'drain':
        this.#registry.drain(event.pilotId, event.reason);
        return;
      case 'credentials-changed':
        this.#registry.recheckCredentials();
        return;
      case 'policy-changed':
      case 'site-mask-changed':
      case 'resync':
        if (event.type === 'resync') this.#registry.recheckCredentials();
        void this.#storedPolicy
          .reload()
          .then(() => this.#matchService.refresh())
          .then(() => this.#matchService.wake())
          .catch((error: unknown) => this.#logger.error({ err: error }, 'refreshing after another replica failed'));
        return;
    }
  }
}
