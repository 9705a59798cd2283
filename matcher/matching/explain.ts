/**
 * Why does (or doesn't) a job match an offer or a queue? Every requirement rule with pass/fail and its
 * reason, plus the matcher's own conditions: the site mask and the site's running limit for the job
 * type. The question DIRAC users ask most, answered from the same rules the matcher applies.
 */
import type { JobView } from '../../shared/job/model.ts';
import { checkRequirements, viewOffer, type Offer } from './fit.ts';
import { JOB_TYPES_AT_BANNED_SITES } from './match-service.ts';
import type { SchedulingPolicy } from './scheduling-policy.ts';
import { taskQueueRequirements, type TaskQueueRequirements } from './task-queue-key.ts';

export interface ExplainTarget {
  /** `offer` = a connected pilot's parked offer; `resource` = a queue or offer given by the caller. */
  kind: 'offer' | 'resource';
  pilotId?: string;
  offer: Offer;
}

export interface ExplainCheck {
  requirement: string;
  pass: boolean;
  reason: string;
}

export interface ExplainVerdict {
  target: { kind: ExplainTarget['kind']; pilotId?: string; site: string; ce: string | null; queue: string | null };
  matches: boolean;
  checks: ExplainCheck[];
}

export interface ExplainContext {
  policy: SchedulingPolicy;
  isBanned(site: string): boolean;
  runningAtSite(site: string): Promise<Record<string, number>>;
}

/** What is explained: a job, or a task queue (all its jobs share these). */
export interface ExplainSubject {
  vo: string;
  jobType: string;
  requirements: TaskQueueRequirements;
}

export function explainJob(
  job: JobView,
  targets: readonly ExplainTarget[],
  context: ExplainContext,
): Promise<ExplainVerdict[]> {
  return explainRequirements(
    { vo: job.vo, jobType: job.jobType, requirements: taskQueueRequirements(job.description) },
    targets,
    context,
  );
}

export async function explainRequirements(
  job: ExplainSubject,
  targets: readonly ExplainTarget[],
  context: ExplainContext,
): Promise<ExplainVerdict[]> {
  const requirements = job.requirements;
  const verdicts: ExplainVerdict[] = [];
  for (const target of targets) {
    if (target.offer.vo !== job.vo) continue; // pilots of another VO never see this job
    const view = viewOffer(target.offer);
    const checks: ExplainCheck[] = checkRequirements(requirements, view);
    const banned = context.isBanned(view.site);
    checks.push({
      requirement: 'siteMask',
      pass: !banned || JOB_TYPES_AT_BANNED_SITES.has(job.jobType),
      reason: banned
        ? `site ${view.site} is banned: only ${[...JOB_TYPES_AT_BANNED_SITES].join(', ')} jobs go there`
        : `site ${view.site} is active`,
    });
    const limit = context.policy.limitFor(view.site, job.jobType);
    if (limit.maxRunning !== null) {
      const running = (await context.runningAtSite(view.site))[job.jobType] ?? 0;
      checks.push({
        requirement: 'runningLimit',
        pass: running < limit.maxRunning,
        reason: `${running} ${job.jobType} job(s) held at ${view.site}, limit ${limit.maxRunning}`,
      });
    }
    verdicts.push({
      target: {
        kind: target.kind,
        ...(target.pilotId !== undefined && { pilotId: target.pilotId }),
        site: view.site,
        ce: target.offer.ce,
        queue: target.offer.queue,
      },
      matches: checks.every((check) => check.pass),
      checks,
    });
  }
  return verdicts;
}
