/** Task queues as `GET /api/task-queues[/{id}]` answers them, and how their requirements read. */

export interface TaskQueue {
  id: number;
  vo: string;
  group: string;
  owner: string;
  waitingJobs: number;
  topPriority: number;
  boost: number;
  paused: { at: string; by: string; reason: string } | null;
  oldestWaitingSince: string | null;
  requirements: Record<string, unknown> & {
    jobType: string;
    coresMin: number;
    coresMax: number;
    wallTimeSec: number;
    sites: string[];
    tags: string[];
  };
}

export interface TaskQueueDetail extends TaskQueue {
  standing: {
    boost: number;
    jobTypeRank: number;
    groupShare: number;
    jobSharing: boolean;
    groupPlace: { place: number; of: number };
    ownerPlace: { place: number; of: number } | null;
    topUserPriority: number;
  };
  held: { owner: number; group: number };
  idlePilots: number;
  fitting: { pilots: { kind: string; pilotId?: string; site: string }[]; sites: string[] };
  whyIdle: string[];
}

export const cores = (r: TaskQueue['requirements']): string =>
  r.coresMin === r.coresMax ? String(r.coresMin) : `${r.coresMin}–${r.coresMax}`;

/** The requirements that say something (set, non-empty, not false), as label/value pairs. */
export function statedRequirements(requirements: Record<string, unknown>): [string, string][] {
  return Object.entries(requirements)
    .filter(([, value]) => value !== null && value !== false && !(Array.isArray(value) && value.length === 0))
    .map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : String(value)]);
}
