/**
 * Choosing among tens of thousands of fitting task queues without reading them all. Per offer shape
 * (everything the fit and the fit score depend on: placement and resources), the TQs that fit are
 * kept in buckets by group, owner and job type, each level with a standing computed from the level
 * below: the highest (boost, job-type rank) among its TQs that have waiting jobs, and at that pair
 * the oldest next job, the first place in the scan order and the best TQ (priority, fit score, FIFO).
 * A TQ whose figures change marks the chain of buckets holding it; a choice recomputes only what is
 * marked, then reads the groups' standings and one group's owners: a match costs the groups, the
 * owners of one group and the buckets that changed, not every fitting TQ. It chooses exactly what
 * `chooseLinear` (ranking.ts) chooses from the same TQs; test/matcher/candidate-buckets.test.ts
 * checks the two side by side on random populations.
 */
import { fitScore, fitsResources, placementKey, type Offer, type OfferView } from './fit.ts';
import { isBetter, type RankingRules } from './ranking.ts';
import type { IndexedTaskQueue } from './task-queue-index.ts';

interface Entry {
  tq: IndexedTaskQueue;
  /** Its place in the placed list: the order the linear choice meets it in. */
  pos: number;
  /** fitScore against this shape (constant: the shape fixes every resource the score reads). */
  score: number;
}

interface Standing {
  boost: number;
  rank: number;
  /** At (boost, rank): the lowest next job id (Infinity when unknown). */
  oldest: number;
  /** At (boost, rank): the first place in the scan order. */
  firstPos: number;
  best: Entry;
}

interface Level {
  dirty: boolean;
  standing: Standing | null;
}

interface Bucket extends Level {
  shape: Shape;
  rank: number;
  entries: Entry[];
  owner: OwnerLevel;
}

interface OwnerLevel extends Level {
  name: string;
  buckets: Map<string, Bucket>;
  group: GroupLevel;
}

interface GroupLevel extends Level {
  name: string;
  owners: Map<string, OwnerLevel>;
}

interface Shape {
  alive: boolean;
  /** The placed list this shape follows (a new list means the placement was recomputed). */
  placed: readonly IndexedTaskQueue[];
  seen: number;
  view: OfferView;
  groups: Map<string, GroupLevel>;
}

/** Offer shapes kept at once, and TQ entries over all of them; beyond either, everything starts over. */
const MAX_SHAPES = 1024;
const MAX_ENTRIES = 2_000_000;

export class CandidateBuckets {
  readonly #shapes = new Map<string, Shape>();
  /** TQ id -> the buckets holding it (those of dropped shapes are pruned when met). */
  readonly #bucketsOf = new Map<number, Bucket[]>();
  #entries = 0;

  /**
   * The shape of this offer, following `placed` — the TQs that pass the offer's placement checks and
   * the site mask, an append-only list (MatchService's placement cache): TQs appended since are
   * checked against the offer's resources and added; a different list starts the shape afresh.
   */
  shapeFor(offer: Offer, view: OfferView, placed: readonly IndexedTaskQueue[], rules: RankingRules): Shape {
    const key = shapeKey(offer);
    let shape = this.#shapes.get(key);
    if (!shape || shape.placed !== placed) {
      if (shape) shape.alive = false;
      if (this.#shapes.size >= MAX_SHAPES || this.#entries >= MAX_ENTRIES) this.clear();
      shape = { alive: true, placed, seen: 0, view, groups: new Map() };
      this.#shapes.set(key, shape);
    }
    for (; shape.seen < placed.length; shape.seen += 1) {
      const tq = placed[shape.seen] as IndexedTaskQueue;
      if (fitsResources(tq.requirements, view)) {
        this.#add(shape, { tq, pos: shape.seen, score: fitScore(tq.requirements, shape.view) }, rules);
      }
    }
    return shape;
  }

  /** Forgets every shape (the job-type ranks changed, or too much is kept). */
  clear(): void {
    for (const shape of this.#shapes.values()) shape.alive = false;
    this.#shapes.clear();
    this.#bucketsOf.clear();
    this.#entries = 0;
  }

  /** The TQ's figures changed (waiting jobs, next job, priority, boost, pause): its standings are stale. */
  changed(tq: IndexedTaskQueue): void {
    const buckets = this.#bucketsOf.get(tq.id);
    if (buckets === undefined) return;
    let dead = 0;
    for (const bucket of buckets) {
      if (!bucket.shape.alive) {
        dead += 1;
        continue;
      }
      bucket.dirty = true;
      bucket.owner.dirty = true;
      bucket.owner.group.dirty = true;
    }
    if (dead > 0) {
      const alive = buckets.filter((bucket) => bucket.shape.alive);
      if (alive.length > 0) this.#bucketsOf.set(tq.id, alive);
      else this.#bucketsOf.delete(tq.id);
    }
  }

  /**
   * The TQ chooseLinear would choose among the shape's TQs that have waiting jobs and are not paused
   * (moving the fair shares on as it does), or null when there is none.
   */
  choose(shape: Shape, rules: RankingRules): IndexedTaskQueue | null {
    let top: Standing | null = null;
    const groups: GroupLevel[] = [];
    for (const group of shape.groups.values()) {
      const standing = refreshGroup(group);
      if (standing === null) continue;
      groups.push(group);
      if (top === null || outranks(standing, top)) top = standing;
    }
    if (top === null) return null;
    const atTop = (level: Level): boolean =>
      level.standing !== null && level.standing.boost === top.boost && level.standing.rank === top.rank;
    const vo = shape.view.vo;
    const groupName = rules.groupShares(vo).pick(namesOldestFirst(groups.filter(atTop)));
    const group = shape.groups.get(groupName as string) as GroupLevel;
    if (rules.jobSharing(group.name)) return (group.standing as Standing).best.tq;
    const owners = [...group.owners.values()].filter(atTop);
    const ownerName = rules.ownerShares(vo, group.name).pick(namesOldestFirst(owners));
    return ((group.owners.get(ownerName as string) as OwnerLevel).standing as Standing).best.tq;
  }

  #add(shape: Shape, entry: Entry, rules: RankingRules): void {
    const { group: groupName, owner: ownerName, requirements } = entry.tq;
    let group = shape.groups.get(groupName);
    if (!group) {
      group = { name: groupName, owners: new Map(), dirty: true, standing: null };
      shape.groups.set(groupName, group);
    }
    let owner = group.owners.get(ownerName);
    if (!owner) {
      owner = { name: ownerName, buckets: new Map(), group, dirty: true, standing: null };
      group.owners.set(ownerName, owner);
    }
    let bucket = owner.buckets.get(requirements.jobType);
    if (!bucket) {
      const rank = rules.jobTypeRank(requirements.jobType);
      bucket = { shape, rank, entries: [], owner, dirty: true, standing: null };
      owner.buckets.set(requirements.jobType, bucket);
    }
    bucket.entries.push(entry);
    bucket.dirty = owner.dirty = group.dirty = true;
    const holding = this.#bucketsOf.get(entry.tq.id);
    if (holding) holding.push(bucket);
    else this.#bucketsOf.set(entry.tq.id, [bucket]);
    this.#entries += 1;
  }
}

/** Everything the placement, fitsResources and fitScore read of an offer, as one string. */
function shapeKey(offer: Offer): string {
  const r = offer.resources;
  const resources = [r.cores, r.memoryMB, r.wallTimeSec, r.diskMB ?? null, r.cpuPower ?? null, r.wholeNode ?? false];
  return `${placementKey(offer)}\u0002${JSON.stringify(resources)}\u0002${JSON.stringify(r.gpus ?? [])}`;
}

function refreshGroup(group: GroupLevel): Standing | null {
  return refreshFrom(group, group.owners.values(), refreshOwner);
}

function refreshOwner(owner: OwnerLevel): Standing | null {
  return refreshFrom(owner, owner.buckets.values(), refreshBucket);
}

/** A level's standing, recomputed from its children's when it is marked. */
function refreshFrom<T>(level: Level, children: Iterable<T>, standingOf: (child: T) => Standing | null) {
  if (level.dirty) {
    let standing: Standing | null = null;
    for (const child of children) standing = merge(standing, standingOf(child));
    level.standing = standing;
    level.dirty = false;
  }
  return level.standing;
}

function refreshBucket(bucket: Bucket): Standing | null {
  if (bucket.dirty) {
    let standing: Standing | null = null;
    for (const entry of bucket.entries) {
      const tq = entry.tq;
      if (tq.waitingJobs <= 0 || tq.paused) continue;
      const oldest = tq.nextJobId ?? Infinity;
      standing = merge(standing, { boost: tq.boost, rank: bucket.rank, oldest, firstPos: entry.pos, best: entry });
    }
    bucket.standing = standing;
    bucket.dirty = false;
  }
  return bucket.standing;
}

function outranks(a: Standing, b: Standing): boolean {
  return a.boost !== b.boost ? a.boost > b.boost : a.rank > b.rank;
}

/** Two standings as one: the higher (boost, rank) wins; at the same pair their figures combine. */
function merge(a: Standing | null, b: Standing | null): Standing | null {
  if (a === null) return b;
  if (b === null) return a;
  if (a.boost !== b.boost || a.rank !== b.rank) return outranks(a, b) ? a : b;
  return {
    boost: a.boost,
    rank: a.rank,
    oldest: Math.min(a.oldest, b.oldest),
    firstPos: Math.min(a.firstPos, b.firstPos),
    best: preferred(a.best, b.best),
  };
}

/** The entry the linear scan keeps: the better one, or on a tie the one it meets first. */
function preferred(a: Entry, b: Entry): Entry {
  if (isBetter(b.tq, b.score, a.tq, a.score)) return b;
  if (isBetter(a.tq, a.score, b.tq, b.score)) return a;
  return a.pos <= b.pos ? a : b;
}

/** As keysOldestFirst: in the order first met, then (stable) by the oldest next job. */
function namesOldestFirst(levels: readonly (GroupLevel | OwnerLevel)[]): string[] {
  return [...levels]
    .sort((a, b) => (a.standing as Standing).firstPos - (b.standing as Standing).firstPos)
    .sort((a, b) => (a.standing as Standing).oldest - (b.standing as Standing).oldest)
    .map((level) => level.name);
}
