/**
 * The scheduling policy lives in the store, so that every matcher sharing it schedules alike (shares,
 * ranks, running limits, matching delays), and it is changed at run time over the REST API: each
 * change is a new version, kept with who made it and when. Replicas pick a change up when told over
 * the cluster bus, and at every task-queue refresh in case a notice was lost: they compare one
 * version number.
 *
 * `pilothouse server --policy FILE` seeds it: the file is published when nothing is stored yet or when
 * the file changed since it was last published. A restart with the same file keeps what operators
 * changed over the API meanwhile (the file is no longer the truth once the API was used).
 */
import { PilothouseError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { JobStore, StoredSetting } from '../store/job-store.ts';
import type { MatchService } from './match-service.ts';
import { policyChanges, type PolicyChange } from './policy-changes.ts';
import {
  checkPolicyDocument,
  compileSchedulingPolicy,
  type PolicyDocument,
  type PolicyDocumentBody,
} from './scheduling-policy.ts';

export const POLICY_SETTING = 'scheduling-policy';
/** The policy file as last published by `--policy` (to tell an edited file from an unchanged one). */
export const POLICY_SEED_SETTING = 'scheduling-policy-seed';

/** Attempts of an edit that keeps meeting concurrent changes before it gives up with POLICY_CONFLICT. */
const EDIT_ATTEMPTS = 5;

export interface PolicyVersion {
  /** 0: nothing was ever stored (the defaults apply). */
  version: number;
  updatedAt: string | null;
  updatedBy: string | null;
  policy: PolicyDocumentBody;
}

export interface PolicyHistoryEntry extends PolicyVersion {
  /** What this version changed from the one before it. */
  changes: PolicyChange[];
}

interface Change {
  at: string;
  by: string;
}

function versionOf(stored: StoredSetting): PolicyVersion {
  return {
    version: stored.version,
    updatedAt: stored.updatedAt,
    updatedBy: stored.updatedBy,
    policy: checkPolicyDocument(JSON.parse(stored.value), 'CONFIG_INVALID', `stored policy v${stored.version}`),
  };
}

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

  /** The stored policy with its defaults filled in (version 0 and the defaults when none is stored). */
  async current(): Promise<PolicyVersion> {
    const stored = await this.#store.getSetting(POLICY_SETTING);
    if (!stored)
      return { version: 0, updatedAt: null, updatedBy: null, policy: checkPolicyDocument({}, 'CONFIG_INVALID') };
    return versionOf(stored);
  }

  /** At start with `--policy FILE`: publishes the file unless it is the one already published. */
  async seed(document: PolicyDocument, at: string): Promise<'published' | 'kept'> {
    const body = checkPolicyDocument(document.raw, 'CONFIG_INVALID', document.source);
    const text = JSON.stringify(body);
    const [stored, seeded] = await Promise.all([
      this.#store.getSetting(POLICY_SETTING),
      this.#store.getSetting(POLICY_SEED_SETTING),
    ]);
    if (stored && seeded?.value === text) {
      await this.reload();
      this.#logger.info(
        { version: stored.version, source: document.source },
        'policy file unchanged since it was published: the stored policy applies',
      );
      return 'kept';
    }
    const by = `file ${document.source}`;
    const published = await this.#store.putSetting(POLICY_SETTING, text, { at, by });
    await this.#store.putSetting(POLICY_SEED_SETTING, text, { at, by });
    this.#apply(body, published.version);
    this.#logger.info({ version: published.version, source: document.source }, 'scheduling policy published');
    return 'published';
  }

  /**
   * Replaces the whole policy (checked first: an invalid one changes nothing). With `expectedVersion`
   * the replacement happens only if the stored version is still that one (else POLICY_CONFLICT).
   */
  async replace(raw: unknown, change: Change, expectedVersion?: number): Promise<PolicyVersion> {
    const body = checkPolicyDocument(raw, 'VALIDATION_FAILED');
    const text = JSON.stringify(body);
    const stored =
      expectedVersion === undefined
        ? await this.#store.putSetting(POLICY_SETTING, text, change)
        : await this.#store.replaceSetting(POLICY_SETTING, text, change, expectedVersion);
    if (!stored) throw conflict(expectedVersion as number);
    return this.#published(stored, body);
  }

  /**
   * Changes part of the policy (one group's share, one limit...) on top of the latest version;
   * `mutate` edits a copy and says whether it changed anything (when not, nothing is stored).
   */
  async edit(
    change: Change,
    mutate: (policy: PolicyDocumentBody) => boolean,
  ): Promise<PolicyVersion & { changed: boolean }> {
    for (let attempt = 0; attempt < EDIT_ATTEMPTS; attempt += 1) {
      const current = await this.current();
      const draft = structuredClone(current.policy);
      if (!mutate(draft)) return { ...current, changed: false };
      const body = checkPolicyDocument(draft, 'VALIDATION_FAILED');
      const stored = await this.#store.replaceSetting(POLICY_SETTING, JSON.stringify(body), change, current.version);
      if (stored) return { ...this.#published(stored, body), changed: true };
    }
    throw new PilothouseError('POLICY_CONFLICT', 'the policy kept changing under this edit: try again');
  }

  /** The latest versions, newest first, each with what it changed. */
  async history(limit: number): Promise<PolicyHistoryEntry[]> {
    const versions = (await this.#store.settingHistory(POLICY_SETTING, limit + 1)).map(versionOf);
    return versions.slice(0, limit).map((version, index) => ({
      ...version,
      changes: policyChanges(versions[index + 1]?.policy ?? null, version.policy),
    }));
  }

  /** Applies the stored policy when it changed since this matcher last looked; true when it did. */
  async reload(): Promise<boolean> {
    const stored = await this.#store.getSetting(POLICY_SETTING);
    if (!stored || stored.version === this.#version) return false;
    try {
      this.#apply(JSON.parse(stored.value), stored.version);
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

  #published(stored: StoredSetting, body: PolicyDocumentBody): PolicyVersion {
    this.#apply(body, stored.version);
    this.#logger.info({ version: stored.version, updatedBy: stored.updatedBy }, 'scheduling policy changed');
    return { version: stored.version, updatedAt: stored.updatedAt, updatedBy: stored.updatedBy, policy: body };
  }

  #apply(raw: unknown, version: number): void {
    this.#matchService.setPolicy(compileSchedulingPolicy(raw, `stored policy v${version}`));
    this.#version = version;
  }
}

function conflict(expectedVersion: number): PilothouseError {
  return new PilothouseError(
    'POLICY_CONFLICT',
    `the policy is no longer at version ${expectedVersion}: read it again and re-apply the change`,
    { expectedVersion },
  );
}
