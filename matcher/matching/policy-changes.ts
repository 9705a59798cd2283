/**
 * What changed between two versions of the scheduling policy, as one line per setting: the history
 * view shows these so that an operator reads "groups.prod.share: 1000 → 3000" rather than two
 * documents. List entries are named by their site and job type, not by their place in the list.
 */
import type { PolicyDocumentBody } from './scheduling-policy.ts';

export interface PolicyChange {
  setting: string;
  /** Null: the setting was not there before (or is gone after). */
  before: unknown;
  after: unknown;
}

function flatten(policy: PolicyDocumentBody): Map<string, unknown> {
  const settings = new Map<string, unknown>();
  for (const [group, entry] of Object.entries(policy.groups)) {
    settings.set(`groups.${group}.share`, entry.share);
    settings.set(`groups.${group}.jobSharing`, entry.jobSharing);
  }
  for (const [jobType, rank] of Object.entries(policy.jobTypeRanks)) settings.set(`jobTypeRanks.${jobType}`, rank);
  for (const limit of policy.runningLimits)
    settings.set(`runningLimits[${limit.site}, ${limit.jobType}].maxRunning`, limit.maxRunning);
  for (const delay of policy.matchingDelays)
    settings.set(`matchingDelays[${delay.site}, ${delay.jobType}].delaySec`, delay.delaySec);
  return settings;
}

export function policyChanges(before: PolicyDocumentBody | null, after: PolicyDocumentBody): PolicyChange[] {
  const old = before ? flatten(before) : new Map<string, unknown>();
  const next = flatten(after);
  const changes: PolicyChange[] = [];
  for (const [setting, value] of next) {
    if (old.get(setting) !== value) changes.push({ setting, before: old.get(setting) ?? null, after: value });
  }
  for (const [setting, value] of old) if (!next.has(setting)) changes.push({ setting, before: value, after: null });
  return changes.sort((a, b) => a.setting.localeCompare(b.setting));
}
