/**
 * The community's scheduling policy: group shares (DIRAC's JobShare, default 1000) and whether a group
 * shares its jobs (JobSharing: one entity for the whole group instead of one per owner), strict job-type
 * ranks, per-site running limits and matching delays per job type. Written as JSON (`pilothouse
 * server --policy FILE`), validated with errors naming the field, kept in the store for every matcher
 * (stored-policy.ts) and compiled once per change.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parseOrThrow } from '../../shared/validation.ts';
import { PilothouseError } from '../../shared/errors.ts';

export const DEFAULT_GROUP_SHARE = 1000;

/** Each (site, job type) pair at most once in a list: a second entry would silently lose. */
const uniquePairs =
  (field: string) => (entries: readonly { site: string; jobType: string }[], ctx: z.RefinementCtx) => {
    const seen = new Set<string>();
    entries.forEach((entry, index) => {
      const key = `${entry.site}\u0000${entry.jobType}`;
      if (seen.has(key)) {
        ctx.addIssue({
          code: 'custom',
          path: [index],
          message: `${field}: site ${entry.site} and job type ${entry.jobType} are listed twice`,
        });
      }
      seen.add(key);
    });
  };

export const policySchema = z.strictObject({
  groups: z
    .record(
      z.string().min(1),
      z.strictObject({
        share: z.number().positive().default(DEFAULT_GROUP_SHARE),
        jobSharing: z.boolean().default(false),
      }),
    )
    .default({}),
  /** Higher rank is served first, strictly; unlisted job types have rank 0. */
  jobTypeRanks: z.record(z.string().min(1), z.int()).default({}),
  runningLimits: z
    .array(
      z.strictObject({
        site: z.string().min(1),
        jobType: z.string().min(1),
        maxRunning: z.int().min(0),
      }),
    )
    .superRefine(uniquePairs('runningLimits'))
    .default([]),
  matchingDelays: z
    .array(
      z.strictObject({
        site: z.string().min(1),
        jobType: z.string().min(1),
        delaySec: z.number().positive(),
      }),
    )
    .superRefine(uniquePairs('matchingDelays'))
    .default([]),
});

export type RawSchedulingPolicy = z.input<typeof policySchema>;
/** A checked policy with every default filled in: what the store keeps and the API shows. */
export type PolicyDocumentBody = z.output<typeof policySchema>;

/** Checks a policy document; errors name the field (`code`: CONFIG_INVALID for files, VALIDATION_FAILED for requests). */
export function checkPolicyDocument(
  raw: unknown,
  code: 'CONFIG_INVALID' | 'VALIDATION_FAILED',
  source?: string,
): PolicyDocumentBody {
  return parseOrThrow(policySchema, raw ?? {}, code, source);
}

export interface SiteJobTypeLimit {
  maxRunning: number | null;
  matchingDelaySec: number | null;
}

export interface SchedulingPolicy {
  groupShare(group: string): number;
  jobSharing(group: string): boolean;
  jobTypeRank(jobType: string): number;
  /** Limits for (site, job type); '*' in the config matches any site or job type. */
  limitFor(site: string, jobType: string): SiteJobTypeLimit;
}

export function compileSchedulingPolicy(raw: unknown, source = 'policy'): SchedulingPolicy {
  const policy = checkPolicyDocument(raw, 'CONFIG_INVALID', source);
  const key = (site: string, jobType: string): string => `${site}\u0000${jobType}`;
  const running = new Map(policy.runningLimits.map((l) => [key(l.site, l.jobType), l.maxRunning]));
  const delays = new Map(policy.matchingDelays.map((d) => [key(d.site, d.jobType), d.delaySec]));
  const lookup = <T>(map: Map<string, T>, site: string, jobType: string): T | null =>
    map.get(key(site, jobType)) ??
    map.get(key(site, '*')) ??
    map.get(key('*', jobType)) ??
    map.get(key('*', '*')) ??
    null;
  return {
    groupShare: (group) => policy.groups[group]?.share ?? DEFAULT_GROUP_SHARE,
    jobSharing: (group) => policy.groups[group]?.jobSharing ?? false,
    jobTypeRank: (jobType) => policy.jobTypeRanks[jobType] ?? 0,
    limitFor: (site, jobType) => ({
      maxRunning: lookup(running, site, jobType),
      matchingDelaySec: lookup(delays, site, jobType),
    }),
  };
}

/** A policy as written by an operator, checked, with where it came from (for messages). */
export interface PolicyDocument {
  raw: RawSchedulingPolicy;
  source: string;
}

/** Reads and checks a policy file (errors name the file and the field). */
export async function readPolicyDocument(file: string): Promise<PolicyDocument> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new PilothouseError('CONFIG_INVALID', `cannot read the policy file ${file}: ${(error as Error).message}`, {
      field: 'policy',
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new PilothouseError('CONFIG_INVALID', `${file} is not valid JSON: ${(error as Error).message}`, {
      field: 'policy',
    });
  }
  compileSchedulingPolicy(raw, file);
  return { raw: raw as RawSchedulingPolicy, source: file };
}
