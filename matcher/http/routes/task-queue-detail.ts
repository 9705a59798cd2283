/**
 * One task queue as an administrator needs to see it: where it stands in the ranking now (boost,
 * job-type rank, its group's share and place in the fair-share order, its owner's place), the jobs
 * its owner and group already hold, the idle pilots that could take it (the same fit rules as
 * matching and explain, against the offers pilots have parked), and in plain words why nothing is
 * taking it when that is the case.
 */
import { ACTIVE_STATUSES } from '../../../shared/job/status.ts';
import { explainRequirements, type ExplainVerdict } from '../../matching/explain.ts';
import type { JobSelection, TaskQueueView } from '../../store/job-store.ts';
import type { RouteDeps } from './context.ts';

/** Distinct reasons listed in `whyIdle` at most (the commonest first). */
const MAX_REASONS = 5;

async function heldJobs(deps: RouteDeps, selection: JobSelection): Promise<number> {
  const counts = await deps.store.summarizeJobs({ ...selection, statuses: [...ACTIVE_STATUSES] }, ['status']);
  return counts.reduce((sum, group) => sum + group.count, 0);
}

/** The first failing check of each idle pilot, counted: "memoryMB: needs 8000 MB, offer has 4096 MB (3 pilots)". */
function refusals(verdicts: readonly ExplainVerdict[]): string[] {
  const counted = new Map<string, number>();
  for (const verdict of verdicts) {
    const failed = verdict.checks.find((check) => !check.pass);
    if (!failed) continue;
    const key = `${failed.requirement}: ${failed.reason}`;
    counted.set(key, (counted.get(key) ?? 0) + 1);
  }
  return [...counted.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, MAX_REASONS)
    .map(([reason, pilots]) => `${reason} (${pilots} idle pilot${pilots === 1 ? '' : 's'})`);
}

export async function describeTaskQueue(deps: RouteDeps, tq: TaskQueueView) {
  // The view just read from the store, not the index: the index may not have heard of a change yet.
  const standing = deps.matchService.standing({ ...tq, paused: tq.paused !== null });
  const [ownerHeld, groupHeld, oldest] = await Promise.all([
    heldJobs(deps, { vos: [tq.vo], owners: [tq.owner] }),
    heldJobs(deps, { vos: [tq.vo], groups: [tq.group] }),
    deps.store.queueAdmin.oldestWaitingJobs([tq.id]),
  ]);
  const parked = deps.matchService.parkedOffers().filter((p) => p.offer.vo === tq.vo);
  const verdicts = await explainRequirements(
    { vo: tq.vo, jobType: tq.requirements.jobType, requirements: tq.requirements },
    parked.map((p) => ({ kind: 'offer', pilotId: p.pilotId, offer: p.offer })),
    {
      policy: deps.matchService.policy,
      isBanned: (site) => deps.matchService.isBanned(site),
      runningAtSite: (site) => deps.store.runningAtSite(site),
    },
  );
  const fitting = verdicts.filter((v) => v.matches).map((v) => v.target);
  const whyIdle: string[] = [];
  if (tq.paused) whyIdle.push(`paused by ${tq.paused.by} at ${tq.paused.at}: ${tq.paused.reason}`);
  if (tq.waitingJobs === 0) whyIdle.push('no job is waiting in it');
  else if (parked.length === 0) {
    whyIdle.push(`no pilot of VO ${tq.vo} is idle right now: every connected one is busy, or none is connected`);
  } else if (fitting.length === 0) whyIdle.push(...refusals(verdicts));
  return {
    ...tq,
    oldestWaitingSince: oldest.get(tq.id) ?? null,
    standing,
    held: { owner: ownerHeld, group: groupHeld },
    idlePilots: parked.length,
    fitting: { pilots: fitting, sites: [...new Set(fitting.map((target) => target.site))].sort() },
    whyIdle,
  };
}
