/**
 * The REST contract between a site director and the matcher, checked on both sides (a matcher's answer
 * is as hostile to the director as the director's request is to the matcher):
 *
 *  - `POST /api/queues/demand`: for each queue (and VO) the director may fill, how many waiting jobs
 *    could run in a pilot of that queue, how many pilots that takes, and the director's pilots already
 *    there — answered from the task queues with the matching rules, never by scanning jobs;
 *  - `POST /api/pilots`: register pilots just submitted (stamp, where, backend job reference);
 *  - `POST /api/pilots/status`: what the batch systems say about them;
 *  - `PUT /api/pilots/{id}/output`: the wrapper's stdout/stderr fetched from the CE;
 *  - `PUT /api/site-directors/{name}`: the last cycle's decisions, for `site-director status`.
 */
import { z } from 'zod';
import { PLATFORM_PATTERN } from '../job/platform.ts';
import { PILOT_STATUSES } from '../pilot/status.ts';

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$/;
export const STAMP_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const nameSchema = z
  .string()
  .regex(NAME_PATTERN, 'letters, digits and _.:@+- (1-128, starting with one of the first two)');
export const stampSchema = z.string().regex(STAMP_PATTERN, '1-64 letters, digits, _ . -');

export const BACKEND_TYPES = ['local', 'ssh', 'slurm', 'htcondor', 'arc'] as const;
export type BackendType = (typeof BACKEND_TYPES)[number];

/** What one pilot of a queue would offer: a slot of the queue's batch jobs. */
export const queueSlotSchema = z.strictObject({
  cores: z.int().min(1).max(100_000),
  memoryMB: z.int().min(0),
  /** Null: the queue has no wall-time limit. */
  wallTimeSec: z.int().min(1).nullable(),
  gpus: z.int().min(0).max(64),
  gpuModel: z.string().min(1).max(128).nullable(),
  gpuMemoryMB: z.int().min(0).nullable(),
  platform: z.string().regex(PLATFORM_PATTERN).nullable(),
  tags: z.array(nameSchema).max(1000),
  requiredTags: z.array(nameSchema).max(100),
  wholeNode: z.boolean(),
  diskMB: z.int().min(0).nullable(),
  /** CPU power per core of the queue's nodes; null: not known before a pilot measures it. */
  cpuPower: z.number().positive().nullable(),
});
export type QueueSlot = z.infer<typeof queueSlotSchema>;

export const demandQueueSchema = z.strictObject({
  /** The director's own name for the (queue, VO) pair; echoed in the answer. */
  key: z.string().min(1).max(512),
  vo: nameSchema,
  site: nameSchema,
  ce: nameSchema,
  queue: nameSchema,
  slot: queueSlotSchema,
});
export type DemandQueue = z.infer<typeof demandQueueSchema>;

export const MAX_DEMAND_QUEUES = 20_000;
export const demandRequestSchema = z.strictObject({
  queues: z.array(demandQueueSchema).max(MAX_DEMAND_QUEUES),
});
export type DemandRequest = z.infer<typeof demandRequestSchema>;

export const pilotCountsSchema = z.strictObject({
  /** Submitted or Waiting in the batch system, or running there but not connected to the matcher yet. */
  waiting: z.int().min(0),
  running: z.int().min(0),
  unknown: z.int().min(0),
});
export type PilotCounts = z.infer<typeof pilotCountsSchema>;

export const demandAnswerSchema = z.strictObject({
  key: z.string(),
  /** Waiting jobs of the VO that a pilot of this queue could run (site mask included). */
  waitingJobs: z.int().min(0),
  /** Pilots of this queue that would take all of them at once (several small jobs share a pilot). */
  pilotsNeeded: z.int().min(0),
  /** Task queues that fit, the largest first (at most 5 listed). */
  taskQueues: z.int().min(0),
  topTaskQueues: z.array(z.strictObject({ id: z.int(), waitingJobs: z.int().min(0), jobsPerPilot: z.int().min(1) })),
  /** This queue's pilots of this VO, as the matcher's pilot records count them. */
  pilots: pilotCountsSchema,
  /** Set when the site is banned in the site mask: only Test jobs are counted. */
  siteBanned: z.boolean(),
});
export type DemandAnswer = z.infer<typeof demandAnswerSchema>;

export const demandResponseSchema = z.strictObject({
  at: z.iso.datetime(),
  queues: z.array(demandAnswerSchema),
});
export type DemandResponse = z.infer<typeof demandResponseSchema>;

export const MAX_PILOTS_PER_REQUEST = 1000;
export const pilotRegistrationSchema = z.strictObject({
  stamp: stampSchema,
  vo: nameSchema,
  site: nameSchema,
  ce: nameSchema,
  queue: nameSchema,
  backend: z.enum(BACKEND_TYPES),
  /** The batch system's id for the pilot's job (SLURM job id, HTCondor Cluster.Proc, ARC job id, ...). */
  backendRef: z.string().min(1).max(512),
  submittedAt: z.iso.datetime(),
});
export type PilotRegistration = z.infer<typeof pilotRegistrationSchema>;

export const registerPilotsSchema = z.strictObject({
  director: nameSchema,
  pilots: z.array(pilotRegistrationSchema).min(1).max(MAX_PILOTS_PER_REQUEST),
});

export const pilotStatusUpdateSchema = z.strictObject({
  stamp: stampSchema,
  status: z.enum(PILOT_STATUSES),
  reason: z.string().max(1024),
  /** The batch system's own word for it (PENDING, 5 (Held), FINISHED, ...). */
  native: z.string().max(256),
  exitCode: z.int().nullable(),
  at: z.iso.datetime(),
  /** The director is done with this pilot: final status known and output fetched (or given up). */
  untrack: z.boolean(),
});
export type PilotStatusUpdate = z.infer<typeof pilotStatusUpdateSchema>;

export const pilotStatusUpdatesSchema = z.strictObject({
  updates: z.array(pilotStatusUpdateSchema).min(1).max(MAX_PILOTS_PER_REQUEST),
});

/** Output kept per stream: the end of it, where the reason a pilot failed is. */
export const MAX_PILOT_OUTPUT_CHARS = 256 * 1024;
export const pilotOutputSchema = z.strictObject({
  stdout: z.string().max(MAX_PILOT_OUTPUT_CHARS),
  stderr: z.string().max(MAX_PILOT_OUTPUT_CHARS),
  /** Some of it was cut (the beginning). */
  truncated: z.boolean(),
});
export type PilotOutput = z.infer<typeof pilotOutputSchema>;

/** Keeps the end of a stream within the limit. */
export function tailOf(text: string, maxChars = MAX_PILOT_OUTPUT_CHARS): { text: string; truncated: boolean } {
  return text.length <= maxChars ? { text, truncated: false } : { text: text.slice(-maxChars), truncated: true };
}

export const queueDecisionSchema = z.strictObject({
  key: z.string().max(512),
  site: z.string(),
  ce: z.string(),
  queue: z.string(),
  vo: z.string(),
  waitingJobs: z.int().min(0).nullable(),
  pilotsNeeded: z.int().min(0).nullable(),
  pilots: pilotCountsSchema.nullable(),
  caps: z.strictObject({
    maxWaitingPilots: z.int().min(0),
    maxRunningPilots: z.int().min(0),
    maxPilotsPerCycle: z.int().min(0),
  }),
  /** Why it is held back, if it is (CE backoff, empty pilots, missed pilots, ...). */
  throttles: z.array(z.string().max(1024)).max(20),
  submitted: z.int().min(0),
  failed: z.int().min(0),
  /** In words: what limited this cycle's number. */
  reason: z.string().max(2048),
});
export type QueueDecision = z.infer<typeof queueDecisionSchema>;

export const ceStateSchema = z.strictObject({
  site: z.string(),
  ce: z.string(),
  backend: z.enum(BACKEND_TYPES),
  consecutiveErrors: z.int().min(0),
  backedOffUntil: z.iso.datetime().nullable(),
  lastError: z.string().max(2048).nullable(),
  missedPilotsInWindow: z.int().min(0),
  throttledUntil: z.iso.datetime().nullable(),
});
export type CeState = z.infer<typeof ceStateSchema>;

export const directorReportSchema = z.strictObject({
  director: nameSchema,
  cycle: z.int().min(0),
  startedAt: z.iso.datetime(),
  durationMs: z.number().min(0),
  matcherReachable: z.boolean(),
  queues: z.array(queueDecisionSchema).max(MAX_DEMAND_QUEUES),
  ces: z.array(ceStateSchema).max(MAX_DEMAND_QUEUES),
  pilotsTracked: z.int().min(0),
  statusUpdates: z.int().min(0),
  outputsFetched: z.int().min(0),
});
export type DirectorReport = z.infer<typeof directorReportSchema>;

export const pilotBundleInfoSchema = z.strictObject({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  sizeBytes: z.int().min(1),
  path: z.string(),
});
export type PilotBundleInfo = z.infer<typeof pilotBundleInfoSchema>;
