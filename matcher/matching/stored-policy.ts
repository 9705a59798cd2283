/**
 * The scheduling policy lives in the store, so that every matcher sharing it schedules alike (shares,
 * ranks, running limits, matching delays). `pilothouse server --policy FILE` publishes the file's
 * policy there at start; a matcher started without `--policy` applies the stored one (or the default
 * when none was ever published). Replicas pick a change up when told over the cluster bus, and at
 * every task-queue refresh in case a notice was lost: they compare one version number.
 */
import type { Logger } from '../../shared/logger.ts';
import type { JobStore } from '../store/job-store.ts';
import type { MatchService } from './match-service.ts';
import { compileSchedulingPolicy, type PolicyDocument } from './scheduling-policy.ts';

export const POLICY_SETTING = 'scheduling-policy';

export class StoredPolicy {
  readonly #store: JobStore;
  readonly #matchService: MatchService;
  readonly #logger: Logger;
  /** The stored version this matcher applies (0: none stored, the default policy). */
  #version = 0;

  constructor(deps: { store: JobStore; matchService: MatchService; logger: Logger }) {
    this.#store = deps.store;
    this.#matchService = deps.matchService;
    this.#logger = deps.logger;
  }

  get version(): number {
    return this.#version;
  }

  /** Stores a checked policy document for every matcher and applies it here. */
  async publish(document: PolicyDocument, change: { at: string; by: string }): Promise<void> {
    const stored = await this.#store.putSetting(POLICY_SETTING, JSON.stringify(document.raw), change);
    this.#apply(document.raw, stored.version);
    this.#logger.info({ version: stored.version, source: document.source }, 'scheduling policy published');
  }

  /** Applies the stored policy when it changed since this matcher last looked; true when it did. */
  async reload(): Promise<boolean> {
    const stored = await this.#store.getSetting(POLICY_SETTING);
    if (!stored || stored.version === this.#version) return false;
    let raw: unknown;
    try {
      raw = JSON.parse(stored.value);
      this.#apply(raw, stored.version);
    } catch (error) {
      // Only a checked document is ever stored; one edited by hand into nonsense is not applied.
      this.#logger.error(
        { err: error, version: stored.version },
        'stored scheduling policy refused: kept the last one',
      );
      this.#version = stored.version;
      return false;
    }
    this.#logger.info({ version: stored.version, updatedBy: stored.updatedBy }, 'scheduling policy applied');
    return true;
  }

  #apply(raw: unknown, version: number): void {
    this.#matchService.setPolicy(compileSchedulingPolicy(raw, `stored policy v${version}`));
    this.#version = version;
  }
}
