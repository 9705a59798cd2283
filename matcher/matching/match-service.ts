/**
 * Turns offers into matches. An offer is checked against the in-memory index of task queues of its VO
 * (never against individual jobs); the fitting ones are ranked and the best job of the best TQ is
 * claimed atomically in the store, which also enforces per-site running limits and matching delays.
 *
 * Ranking, in order: the site mask (a banned site gets only Test jobs); an administrator's boost of a
 * TQ (the highest boost first; paused TQs are not candidates at all); strict job-type rank; group
 * fair share; owner fair share inside a group (unless the group shares its jobs); then, inside the
 * chosen owner's TQs, user priority, how well the job fills the offer, and FIFO.
 *
 * An offer with nothing to match is parked; `wake()` (after every submission) pushes a match to parked
 * offers the moment a fitting job exists — no polling.
 */
import type { Logger } from '../../shared/logger.ts';
import { isoNow, type Clock } from '../../shared/clock.ts';
import type { JobView } from '../../shared/job/model.ts';
import type { JobStore, SiteMaskEntry } from '../store/job-store.ts';
import { FairShare } from './fair-share.ts';
import { groupsScope, ownersScope, parseScope, SharedUsage } from './shared-usage.ts';
import {
  fits,
  fitsPlacement,
  fitsResources,
  grant,
  offerAfterGrants,
  placementKey,
  viewAfterGrant,
  viewOffer,
  type Grant,
  type Offer,
  type OfferView,
} from './fit.ts';
import type { DemandQueue } from '../../shared/protocol/site-director.ts';
import { queueDemand, slotOffer, type QueueDemand } from './demand.ts';
import type { SchedulingPolicy } from './scheduling-policy.ts';
import { TaskQueueIndex, type IndexedTaskQueue } from './task-queue-index.ts';
import type { TaskQueueRequirements } from './task-queue-key.ts';
import { CandidateBuckets } from './candidate-buckets.ts';
import { chooseLinear, keysOldestFirst, type RankingRules } from './ranking.ts';

export interface TaskQueueStanding {
  boost: number;
  jobTypeRank: number;
  groupShare: number;
  jobSharing: boolean;
  groupPlace: { place: number; of: number };
  /** Null when the group shares its jobs (its owners are not told apart). */
  ownerPlace: { place: number; of: number } | null;
  topUserPriority: number;
}

export interface Match {
  job: JobView;
  grant: Grant;
  /** The requirements of the job's TQ (what the grant was cut from). */
  requirements: TaskQueueRequirements;
}

export interface ParkedOffer {
  pilotId: string;
  offerId: string;
  offer: Offer;
  /**
   * Tries to serve the parked offer now. It runs in the pilot session's own serial queue, so it never
   * interleaves with that pilot's newer offers; the session unparks the offer when it serves it.
   */
  serve(): Promise<void>;
}

/** Offer shapes remembered at once (pilots × sites × tag sets); the cache starts over beyond that. */
const MAX_CACHED_PLACEMENTS = 4096;

/**
 * From this many TQs in a VO's scan list on, offers are ranked from per-shape buckets
 * (candidate-buckets.ts) instead of by reading every fitting TQ.
 */
export const DEFAULT_BUCKETS_FROM_TQS = 2000;

/** Only these job types reach a banned site (DIRAC: the mask forces JobType=Test). */
export const JOB_TYPES_AT_BANNED_SITES: ReadonlySet<string> = new Set(['Test']);

export class MatchService {
  readonly #store: JobStore;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #policy: SchedulingPolicy;
  readonly index = new TaskQueueIndex();
  readonly #groupShares = new Map<string, FairShare>();
  readonly #ownerShares = new Map<string, FairShare>();
  /** Only when other matchers may share the store (PostgreSQL): SQLite has one matcher. */
  readonly #usage: SharedUsage | null;
  readonly #bannedSites = new Map<string, SiteMaskEntry>();
  readonly #parked = new Map<string, ParkedOffer>();
  readonly #parkedViews = new WeakMap<ParkedOffer, OfferView>();
  readonly #onMatchTried: (matched: boolean, seconds: number) => void;
  /**
   * Per offer shape (placementKey): the VO's TQs that pass the placement checks and the site mask. A
   * pilot's offers differ only in what is left of its slot, so an offer re-checks only resources.
   * An entry follows the VO's scan list: TQs appended since are checked and added, so a new TQ costs
   * each cached shape one check; the entry is rebuilt when the list is compacted or the mask changes.
   */
  readonly #placements = new Map<
    string,
    { epoch: number; seen: number; maskVersion: number; tqs: IndexedTaskQueue[] }
  >();
  #maskVersion = 0;
  readonly #buckets = new CandidateBuckets();
  readonly #bucketsFromTqs: number;
  readonly #rules: RankingRules = {
    jobTypeRank: (jobType) => this.#policy.jobTypeRank(jobType),
    jobSharing: (group) => this.#policy.jobSharing(group),
    groupShares: (vo) => this.#shares(this.#groupShares, vo),
    ownerShares: (vo, group) => this.#shares(this.#ownerShares, `${vo}\u0000${group}`),
  };
  #waking: Promise<void> | null = null;
  #wakeAgain = false;
  /** TQs changed since the last wake pass ('all': consider every TQ). */
  #woken: Set<number> | 'all' = new Set();

  constructor(deps: {
    store: JobStore;
    clock: Clock;
    logger: Logger;
    policy: SchedulingPolicy;
    /** Exchange fair-share usage with other matchers on the store (see syncShares). */
    sharedStore?: boolean;
    /** Told how each match attempt ended and how long it took, in seconds (for /metrics). */
    onMatchTried?: (matched: boolean, seconds: number) => void;
    /** See DEFAULT_BUCKETS_FROM_TQS (0: always). */
    bucketsFromTqs?: number;
  }) {
    this.#bucketsFromTqs = deps.bucketsFromTqs ?? DEFAULT_BUCKETS_FROM_TQS;
    this.index.watch((tq) => this.#buckets.changed(tq));
    this.#onMatchTried = deps.onMatchTried ?? (() => {});
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#logger = deps.logger;
    this.#policy = deps.policy;
    this.#usage = deps.sharedStore ? new SharedUsage(deps.store) : null;
  }

  get policy(): SchedulingPolicy {
    return this.#policy;
  }

  /** A new policy (published here or by another replica) applies from the next offer on. */
  setPolicy(policy: SchedulingPolicy): void {
    this.#policy = policy;
    this.#buckets.clear(); // the job-type ranks the buckets were ranked with may have changed
  }

  /** Loads (or re-reads) TQs and the site mask from the store: at start, then periodically. */
  async refresh(): Promise<void> {
    await this.index.load(this.#store);
    const banned = new Map<string, SiteMaskEntry>();
    for (const entry of await this.#store.siteMask()) if (entry.status === 'Banned') banned.set(entry.site, entry);
    // Only a mask that changed invalidates what was cached per offer shape (rebuilding it for every
    // shape each refresh was a scan of every TQ, every few seconds).
    const changed =
      banned.size !== this.#bannedSites.size || [...banned.keys()].some((site) => !this.#bannedSites.has(site));
    this.#bannedSites.clear();
    for (const [site, entry] of banned) this.#bannedSites.set(site, entry);
    if (changed) this.#maskVersion += 1;
  }

  async setSiteStatus(entry: SiteMaskEntry): Promise<void> {
    await this.#store.setSiteStatus(entry);
    if (entry.status === 'Banned') this.#bannedSites.set(entry.site, entry);
    else this.#bannedSites.delete(entry.site);
    this.#maskVersion += 1;
    if (entry.status === 'Active') void this.wake();
  }

  isBanned(site: string): boolean {
    return this.#bannedSites.has(site);
  }

  /** What a pilot of this queue could run now (see demand.ts): the index and the site mask, no store. */
  demand(queue: DemandQueue): QueueDemand & { siteBanned: boolean } {
    const siteBanned = this.#bannedSites.has(queue.site);
    const passesMask = (tq: IndexedTaskQueue): boolean =>
      !siteBanned || JOB_TYPES_AT_BANNED_SITES.has(tq.requirements.jobType);
    return {
      ...queueDemand(this.index.withWaitingJobs(queue.vo), slotOffer(queue, queue.slot), passesMask),
      siteBanned,
    };
  }

  /** After a submission: re-read the TQs it filled, then serve parked offers. */
  async jobsSubmitted(taskQueueIds: readonly number[]): Promise<void> {
    for (const id of taskQueueIds) {
      const view = await this.#store.getTaskQueue(id);
      if (view) this.index.upsert(view);
    }
    await this.wake(taskQueueIds);
  }

  /** The TQs this offer could take a job from now (fit, site mask), unranked. */
  candidates(offer: Offer, view: OfferView = viewOffer(offer)): IndexedTaskQueue[] {
    const placed = this.#placedFor(offer, view);
    const candidates: IndexedTaskQueue[] = [];
    for (const tq of placed) {
      if (tq.waitingJobs > 0 && !tq.paused && fitsResources(tq.requirements, view)) candidates.push(tq);
    }
    return candidates;
  }

  /** The VO's TQs that pass the offer's placement checks and the site mask (some may be empty now). */
  #placedFor(offer: Offer, view: OfferView): readonly IndexedTaskQueue[] {
    const list = this.index.scanList(view.vo);
    const key = placementKey(offer);
    let cached = this.#placements.get(key);
    if (!cached || cached.epoch !== list.epoch || cached.maskVersion !== this.#maskVersion) {
      if (this.#placements.size >= MAX_CACHED_PLACEMENTS) this.#placements.clear();
      cached = { epoch: list.epoch, seen: 0, maskVersion: this.#maskVersion, tqs: [] };
      this.#placements.set(key, cached);
    }
    for (; cached.seen < list.tqs.length; cached.seen += 1) {
      const tq = list.tqs[cached.seen] as IndexedTaskQueue;
      if (this.#passesMask(tq, view) && fitsPlacement(tq.requirements, view)) cached.tqs.push(tq);
    }
    return cached.tqs;
  }

  #passesMask(tq: IndexedTaskQueue, view: OfferView): boolean {
    return !this.#bannedSites.has(view.site) || JOB_TYPES_AT_BANNED_SITES.has(tq.requirements.jobType);
  }

  /** The TQ has jobs, is of the offer's VO, passes the site mask and fits the offer. */
  #mayServe(tq: IndexedTaskQueue, view: OfferView): boolean {
    if (tq.waitingJobs <= 0 || tq.vo !== view.vo) return false;
    return this.#passesMask(tq, view) && fits(tq.requirements, view);
  }

  /** Claims the best fitting job for the offer, or returns null when nothing fits now. */
  async findMatch(offer: Offer, pilotId: string): Promise<Match | null> {
    const [match] = await this.findMatches(offer, pilotId, 1);
    return match ?? null;
  }

  /**
   * Fills the offer with up to `maxJobs` jobs (a multi-core pilot's free cores): as many jobs of the
   * best TQ as fit it at once — claimed in the same turn, so in one group commit — then, with what is
   * left, the best TQ again, until the offer is full, `maxJobs` is reached or nothing fits. Empty when
   * nothing fits now.
   */
  async findMatches(offer: Offer, pilotId: string, maxJobs: number): Promise<Match[]> {
    const started = performance.now();
    const matches: Match[] = [];
    let left = offer;
    while (matches.length < maxJobs) {
      const round = await this.#findMatch(left, pilotId, maxJobs - matches.length);
      if (round.length === 0) break;
      matches.push(...round);
      if (matches.length >= maxJobs) break;
      left = offerAfterGrants(
        offer,
        matches.map((match) => ({ req: match.requirements, grant: match.grant })),
      );
    }
    this.#onMatchTried(matches.length > 0, (performance.now() - started) / 1000);
    return matches;
  }

  /** How many offers are parked here now. */
  get parkedCount(): number {
    return this.#parked.size;
  }

  async #findMatch(offer: Offer, pilotId: string, count: number): Promise<Match[]> {
    const view = viewOffer(offer);
    // TQs the store could not serve this offer from, and job types over a limit at its site.
    const tried = new Set<number>();
    const limitedTypes = new Set<string>();
    if (this.index.scanList(view.vo).tqs.length >= this.#bucketsFromTqs) {
      for (;;) {
        const shape = this.#buckets.shapeFor(offer, view, this.#placedFor(offer, view), this.#rules);
        const tq = this.#buckets.choose(shape, this.#rules);
        if (tq === null) return [];
        // A TQ chosen again after its claim failed (the index still lists it), or a limit reached:
        // the linear ranking below, which can leave them out, finishes this offer.
        if (tried.has(tq.id)) break;
        const outcome = await this.#claim(tq, view, pilotId, count);
        if (Array.isArray(outcome)) return outcome;
        tried.add(tq.id);
        if (outcome.limited) {
          limitedTypes.add(tq.requirements.jobType);
          break;
        }
      }
    }
    const excluded = (tq: IndexedTaskQueue): boolean => tried.has(tq.id) || limitedTypes.has(tq.requirements.jobType);
    let candidates = this.candidates(offer, view).filter((tq) => !excluded(tq));
    while (candidates.length > 0) {
      const tq = chooseLinear(candidates, view, this.#rules);
      const outcome = await this.#claim(tq, view, pilotId, count);
      if (Array.isArray(outcome)) return outcome;
      // The limit is per (site, job type): no TQ of this type can be served at this site now.
      const jobType = tq.requirements.jobType;
      candidates = candidates.filter((c) => c !== tq && !(outcome.limited && c.requirements.jobType === jobType));
    }
    return [];
  }

  /**
   * Claims up to `count` of the TQ's next jobs for the offer, as many as its resources hold (one when
   * a running limit or matching delay applies: those are decided claim by claim); never empty when it
   * returns matches. `limited` when a running limit or matching delay refused the claim.
   */
  async #claim(
    tq: IndexedTaskQueue,
    view: OfferView,
    pilotId: string,
    count: number,
  ): Promise<Match[] | { limited: boolean }> {
    const limit = this.#policy.limitFor(view.site, tq.requirements.jobType);
    const request = {
      pilotId,
      site: view.site,
      ce: view.ce,
      at: isoNow(this.#clock),
      jobType: tq.requirements.jobType,
      maxRunning: limit.maxRunning,
      matchingDelaySec: limit.matchingDelaySec,
    };
    const limited = limit.maxRunning !== null || limit.matchingDelaySec !== null;
    const grants = this.#grantsFor(tq, view, limited ? 1 : Math.min(count, tq.waitingJobs));
    // One write takes them all, best first; fewer come back when fewer are waiting.
    const result = await this.#store.claimJobsFromTaskQueue(tq.id, request, grants.length);
    this.index.applyStats(result.taskQueue);
    if (result.reason !== undefined) return { limited: result.reason !== 'empty' && result.reason !== 'paused' };
    return result.jobs.map((job, index) => {
      const given = grants[index] as Grant;
      this.#charge(tq, given.cores);
      return { job, grant: given, requirements: tq.requirements };
    });
  }

  /** The grants of up to `count` jobs of the TQ, each from what the ones before it left of the offer. */
  #grantsFor(tq: IndexedTaskQueue, view: OfferView, count: number): Grant[] {
    const req = tq.requirements;
    const grants = [grant(req, view)];
    let left = view;
    while (grants.length < count && !req.wholeNode) {
      left = viewAfterGrant(left, req, grants.at(-1) as Grant);
      if (!fitsResources(req, left)) break;
      grants.push(grant(req, left));
    }
    return grants;
  }

  /**
   * Where a TQ stands now among its VO's matchable work: the ranking keys in the order #choose uses
   * them, and its group's and owner's places in the fair-share order (1: served next; 0: not in
   * contention, e.g. while paused).
   */
  standing(tq: IndexedTaskQueue): TaskQueueStanding {
    const policy = this.#policy;
    const listed = this.index.withWaitingJobs(tq.vo);
    const groups = this.#shares(this.#groupShares, tq.vo).order(keysOldestFirst(listed, (t) => t.group));
    const jobSharing = policy.jobSharing(tq.group);
    const owners = jobSharing
      ? null
      : this.#shares(this.#ownerShares, `${tq.vo}\u0000${tq.group}`).order(
          keysOldestFirst(
            listed.filter((t) => t.group === tq.group),
            (t) => t.owner,
          ),
        );
    return {
      boost: tq.boost,
      jobTypeRank: policy.jobTypeRank(tq.requirements.jobType),
      groupShare: policy.groupShare(tq.group),
      jobSharing,
      groupPlace: { place: groups.indexOf(tq.group) + 1, of: groups.length },
      ownerPlace: owners && { place: owners.indexOf(tq.owner) + 1, of: owners.length },
      topUserPriority: tq.topPriority,
    };
  }

  #shares(map: Map<string, FairShare>, key: string): FairShare {
    let shares = map.get(key);
    if (!shares) {
      shares = new FairShare();
      map.set(key, shares);
    }
    return shares;
  }

  #charge(tq: IndexedTaskQueue, cores: number): void {
    this.#chargeGroup(tq.vo, tq.group, cores);
    this.#usage?.record(groupsScope(tq.vo), tq.group, cores);
    if (!this.#policy.jobSharing(tq.group)) {
      this.#chargeOwner(tq.vo, tq.group, tq.owner, cores);
      this.#usage?.record(ownersScope(tq.vo, tq.group), tq.owner, cores);
    }
  }

  #chargeGroup(vo: string, group: string, cores: number): void {
    this.#shares(this.#groupShares, vo).charge(group, this.#policy.groupShare(group), cores);
  }

  #chargeOwner(vo: string, group: string, owner: string, cores: number): void {
    this.#shares(this.#ownerShares, `${vo}\u0000${group}`).charge(owner, 1, cores);
  }

  /**
   * Exchanges fair-share usage with the other matchers sharing the store (shared-usage.ts): what they
   * matched since the last call is charged here as if matched here. The first call sets the start.
   * Nothing to do on a store no other matcher uses.
   */
  async syncShares(): Promise<void> {
    if (!this.#usage) return;
    for (const { scope, entity, usage } of await this.#usage.sync()) {
      const contest = parseScope(scope);
      if (contest?.kind === 'group') this.#chargeGroup(contest.vo, entity, usage);
      else if (contest?.kind === 'owner' && !this.#policy.jobSharing(contest.group))
        this.#chargeOwner(contest.vo, contest.group, entity, usage);
    }
  }

  /** Parks an offer; a newer offer of the same pilot replaces the older one. */
  park(parked: ParkedOffer): void {
    this.#parked.delete(parked.pilotId);
    this.#parked.set(parked.pilotId, parked);
  }

  /** Removes the pilot's parked offer; true if it was still parked (not yet served). */
  unpark(pilotId: string, offerId?: string): boolean {
    const parked = this.#parked.get(pilotId);
    if (!parked || (offerId !== undefined && parked.offerId !== offerId)) return false;
    this.#parked.delete(pilotId);
    return true;
  }

  isParked(pilotId: string, offerId: string): boolean {
    return this.#parked.get(pilotId)?.offerId === offerId;
  }

  /** The parked offer as the fit rules read it, built once per offer (a wake pass reads it often). */
  #viewOf(parked: ParkedOffer): OfferView {
    let view = this.#parkedViews.get(parked);
    if (view === undefined) {
      view = viewOffer(parked.offer);
      this.#parkedViews.set(parked, view);
    }
    return view;
  }

  parkedOffers(): readonly ParkedOffer[] {
    return [...this.#parked.values()];
  }

  /**
   * Serves parked offers (oldest first) that a change may concern. After a submission only the TQs it
   * filled are checked against each parked offer — a few fits per idle pilot, not a scan of every TQ —
   * and offers that none of them fits are skipped without touching the store. Without ids (a site
   * allowed again, a refresh from the store) every TQ is considered. Calls that arrive while a pass
   * runs are folded into one more pass, so a burst of submissions costs at most two passes.
   */
  wake(taskQueueIds?: readonly number[]): Promise<void> {
    if (taskQueueIds === undefined || this.#woken === 'all') this.#woken = 'all';
    else for (const id of taskQueueIds) this.#woken.add(id);
    if (this.#waking) {
      this.#wakeAgain = true;
      return this.#waking;
    }
    // `.finally` runs after this assignment even when the passes finish synchronously (no parked
    // offers): clearing the flag inside the async body would run first and leave it set for ever.
    this.#waking = this.#wakePasses().finally(() => {
      this.#waking = null;
    });
    return this.#waking;
  }

  async #wakePasses(): Promise<void> {
    try {
      do {
        this.#wakeAgain = false;
        const woken = this.#woken;
        this.#woken = new Set();
        const changedIds = woken === 'all' ? null : [...woken];
        for (const parked of [...this.#parked.values()]) {
          if (this.#parked.get(parked.pilotId) !== parked) continue; // replaced or cancelled meanwhile
          // Read afresh: the offers served so far may have taken every job the change brought. Then
          // the pass ends here, and a submission costs the fits of the first idle pilots, not of all.
          const changed =
            changedIds === null
              ? null
              : changedIds
                  .map((id) => this.index.get(id))
                  .filter((tq): tq is IndexedTaskQueue => tq !== undefined && tq.waitingJobs > 0);
          if (changed !== null && changed.length === 0) break;
          const view = this.#viewOf(parked);
          const concerned =
            changed === null
              ? this.candidates(parked.offer, view).length > 0
              : changed.some((tq) => this.#mayServe(tq, view));
          if (concerned) await parked.serve();
        }
      } while (this.#wakeAgain);
    } catch (error) {
      this.#logger.error({ err: error }, 'waking parked offers failed');
    }
  }
}
