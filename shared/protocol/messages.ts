/**
 * The pilot <-> matcher WebSocket protocol. Every frame is one JSON object with `type` and the
 * protocol version `v`. Frames from the other side are hostile until `parsePilotMessage` /
 * `parseMatcherMessage` accept them. Every job-related message names job id and attempt, so a stale
 * report or command never touches a newer attempt.
 *
 * Flow: hello -> welcome; offer -> match | parked (then a pushed match), or up to `maxJobs` match
 * frames in a row (each but the last saying how many `following`); job.status (one report, or
 * several of one attempt) -> ack; job.statuses (the reports of several attempts) -> ack (naming the
 * attempts refused for good);
 * heartbeat -> ack (+ commands); offer.cancel -> offer.cancelled; bye.
 */
import { z } from 'zod';
import { JOB_STATUSES } from '../job/status.ts';
import { jobDescriptionSchema } from '../job/description.ts';
import { PilothouseError, isErrorCode } from '../errors.ts';
import { PLATFORM_PATTERN } from '../job/platform.ts';
import { dropUnknownKeys } from './lenient.ts';

export const PROTOCOL_VERSION = 1;
export const MAX_FRAME_BYTES = 1024 * 1024;

const v = z.literal(PROTOCOL_VERSION);
const ident = z.string().min(1).max(128);
const jobRef = { jobId: z.int().positive(), attempt: z.int().positive() };

export const gpuSchema = z.strictObject({
  /** How the pilot names this device when it hands it to a job (e.g. the CUDA index or UUID). */
  id: z.string().min(1).max(128),
  model: z.string().max(255),
  memoryMB: z.int().min(0),
});
export type GpuInfo = z.infer<typeof gpuSchema>;

/** A GPU as the probe saw it (vendor and UUID are for the pilot's record; offers carry `gpuSchema`). */
export const probedGpuSchema = gpuSchema.extend({
  vendor: z.string().max(64),
  uuid: z.string().max(128).optional(),
});

/**
 * What the pilot found on its node, sent in hello and kept in the pilot's record. The fields after
 * `cpuModel` are optional for older pilots.
 */
export const nodeInfoSchema = z.strictObject({
  hostname: z.string().max(255),
  cores: z.int().min(1).max(100_000),
  memoryMB: z.int().min(0),
  os: z.string().max(255),
  arch: z.string().max(64),
  cpuModel: z.string().max(255),
  kernel: z.string().max(255).optional(),
  /** `x86_64-v3` style: architecture and micro-architecture level (shared/job/platform.ts). */
  platform: z.string().regex(PLATFORM_PATTERN).nullable().optional(),
  /** Normalised power of one core (DB12-style units), from the pilot's quick benchmark. */
  cpuPower: z.number().positive().nullable().optional(),
  gpus: z.array(probedGpuSchema).max(64).optional(),
  /** Free disk in the pilot's working area when it started, MB. */
  diskFreeMB: z.int().min(0).nullable().optional(),
  /** The batch system the pilot runs under (slurm, htcondor, pbs...) and its job id there. */
  batchSystem: z.string().max(64).nullable().optional(),
  batchJobId: z.string().max(255).nullable().optional(),
  /** When the batch slot ends (ISO time), as far as the pilot could tell; null = unknown. */
  slotEndsAt: z.iso.datetime().nullable().optional(),
  /** How the pilot isolates payloads: bwrap, bwrap+uid, uid or none (absent: an older pilot, none). */
  isolation: z.enum(['bwrap', 'bwrap+uid', 'uid', 'none']).optional(),
});
export type NodeInfo = z.infer<typeof nodeInfoSchema>;

/**
 * What the pilot has left to give; recomputed before each offer. `wallTimeSec: null` = no limit known.
 * Fields after `tags` are optional for older pilots: absent means none (GPUs, required tags), unknown
 * (disk, CPU power, platform: requirements on them then do not fit) or not a whole node.
 */
export const offerResourcesSchema = z.strictObject({
  cores: z.int().min(0).max(100_000),
  memoryMB: z.int().min(0),
  wallTimeSec: z.int().min(0).nullable(),
  tags: z.array(z.string().max(128)).max(1000),
  /** A GPU or multi-core queue can demand that only jobs carrying these tags come. */
  requiredTags: z.array(z.string().max(128)).max(100).optional(),
  /** The free GPUs. */
  gpus: z.array(gpuSchema).max(64).optional(),
  diskMB: z.int().min(0).nullable().optional(),
  /** Normalised CPU power of one core (DB12-style units). */
  cpuPower: z.number().positive().nullable().optional(),
  platform: z.string().regex(PLATFORM_PATTERN).nullable().optional(),
  /** Nothing else runs in this slot and it spans a whole node. */
  wholeNode: z.boolean().optional(),
});
export type OfferResources = z.infer<typeof offerResourcesSchema>;

/** Characters of std.out and of std.err a tail carries at most. */
export const OUTPUT_TAIL_MAX_CHARS = 16_384;

/** The last lines a running payload wrote, for `pilothouse logs` (sent when they changed). */
export const outputTailSchema = z.strictObject({
  stdout: z.string().max(OUTPUT_TAIL_MAX_CHARS),
  stderr: z.string().max(OUTPUT_TAIL_MAX_CHARS),
});
export type OutputTail = z.infer<typeof outputTailSchema>;

const heartbeatJobSchema = z.strictObject({
  ...jobRef,
  /** CPU time (user + system) of the whole process tree, s. */
  cpuSec: z.number().min(0),
  /** Resident memory of the whole process tree, MB. */
  rssMB: z.number().min(0),
  wallSec: z.number().min(0),
  /** Disk used by the job's working directory, MB. */
  diskMB: z.number().min(0).optional(),
  outputTail: outputTailSchema.optional(),
});

/** The node as a whole at heartbeat time. */
const heartbeatNodeSchema = z.strictObject({
  /** 1-minute load average. */
  load1: z.number().min(0),
  /** Free disk in the pilot's working area, MB. */
  diskFreeMB: z.number().min(0).nullable(),
});

/** One line of the pilot's own structured log; `seq` counts from 1 per pilot process. */
const pilotLogLineSchema = z.strictObject({
  seq: z.int().positive(),
  line: z.string().max(16_384),
});
export type PilotLogLine = z.infer<typeof pilotLogLineSchema>;

/** What a status report about one attempt says: the WebSocket frame and the REST fallback share it. */
export const jobStatusReportFields = {
  at: z.iso.datetime(),
  status: z.enum(JOB_STATUSES).optional(),
  minorStatus: z.string().max(1024).optional(),
  applicationStatus: z.string().max(1024).optional(),
  exitCode: z.int().optional(),
  outputSandbox: z
    .string()
    .regex(/^sha256:[0-9a-f]{64}$/)
    .optional(),
  /** The payload's last output, with the report that it ended (heartbeats carry it while it runs). */
  outputTail: outputTailSchema.optional(),
};

/** Reports one frame may carry before its own (a short job's Running ... Done). */
export const MAX_EARLIER_REPORTS = 100;

/** Jobs one offer may ask for at once (a multi-core pilot filling its free cores). */
export const MAX_JOBS_PER_OFFER = 64;

/** Attempts one `job.statuses` frame may report on. */
export const MAX_ATTEMPTS_PER_REPORT_FRAME = 64;

/**
 * A status report frame: its own report, and optionally the reports about the same attempt that
 * came before it and were not sent yet (`earlier`, oldest first). The matcher applies them in that
 * order in one write and acks the frame once.
 */
export const jobStatusFrameFields = {
  ...jobStatusReportFields,
  earlier: z.array(z.strictObject(jobStatusReportFields)).min(1).max(MAX_EARLIER_REPORTS).optional(),
};
export type JobStatusReportBody = z.infer<z.ZodObject<typeof jobStatusReportFields>>;

/**
 * What a pilot may send. Built when first needed: the matcher parses these frames, the pilot only
 * writes them (and skips building the schemas at every start).
 */
const buildPilotMessageSchema = () =>
  z.discriminatedUnion('type', [
    z.strictObject({
      type: z.literal('hello'),
      v,
      /** Unique per pilot process (the site director's stamp, or a random UUID); reconnects reuse it. */
      pilotStamp: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
      pilotVersion: z.string().max(64),
      site: ident,
      ce: ident.nullable(),
      queue: ident.nullable(),
      node: nodeInfoSchema,
      /**
       * The attempts this pilot holds as it connects: jobs it runs and jobs whose reports it has not
       * seen acked. After a reconnect, a job matched to it that is not listed never reached it (the
       * connection died between the claim and the frame), and the matcher gives it back at once.
       * Absent from older pilots: nothing is reconciled then.
       */
      holding: z.array(z.strictObject(jobRef)).max(10_000).optional(),
    }),
    z.strictObject({
      type: z.literal('offer'),
      v,
      offerId: ident,
      /** The number of matches this pilot had received when it built the offer; older offers are stale. */
      matchSeq: z.int().min(0),
      resources: offerResourcesSchema,
      /**
       * Up to this many jobs may fill the offer's resources at once (absent: one). They come as that
       * many match frames in one write, each but the last saying how many are `following`.
       */
      maxJobs: z.int().min(1).max(MAX_JOBS_PER_OFFER).optional(),
    }),
    z.strictObject({ type: z.literal('offer.cancel'), v, offerId: ident }),
    z.strictObject({
      type: z.literal('job.status'),
      v,
      ref: z.int().min(0),
      ...jobRef,
      ...jobStatusFrameFields,
    }),
    /**
     * The reports of several attempts in one frame (each entry as a `job.status` frame's body), acked
     * once; an attempt refused for good is named in the ack's `refused`, the others are stored.
     */
    z.strictObject({
      type: z.literal('job.statuses'),
      v,
      ref: z.int().min(0),
      reports: z
        .array(z.strictObject({ ...jobRef, ...jobStatusFrameFields }))
        .min(1)
        .max(MAX_ATTEMPTS_PER_REPORT_FRAME),
    }),
    z.strictObject({
      type: z.literal('heartbeat'),
      v,
      ref: z.int().min(0),
      jobs: z.array(heartbeatJobSchema).max(10_000),
      /**
       * The matches received on this connection when the heartbeat left (the count offers carry too).
       * Sent only when `jobs` lists every attempt the pilot holds then: a job matched to it at or below
       * this count that `jobs` leaves out is one the pilot lost, and the matcher gives it back.
       */
      matchSeq: z.int().min(0).optional(),
      node: heartbeatNodeSchema.optional(),
      /** When the samples were taken, if not now (a heartbeat replayed after a reconnect). */
      at: z.iso.datetime().optional(),
    }),
    /** A batch of the pilot's log lines; acked by ref, replayed after a reconnect, stored once per seq. */
    z.strictObject({
      type: z.literal('log'),
      v,
      ref: z.int().min(0),
      lines: z.array(pilotLogLineSchema).min(1).max(2_000),
      /** Lines the pilot had to drop (its buffer was full) before this batch. */
      dropped: z.int().min(0).optional(),
    }),
    z.strictObject({
      type: z.literal('bye'),
      v,
      /** Why the pilot stops: idle, drained, drain-file, drain-command, time-left, terminated... */
      reason: z.string().max(1024),
      jobsRun: z.int().min(0).optional(),
      jobsFailed: z.int().min(0).optional(),
    }),
  ]);
let pilotMessageSchema: ReturnType<typeof buildPilotMessageSchema> | undefined;
export type PilotMessage = z.infer<ReturnType<typeof buildPilotMessageSchema>>;

/**
 * The job description inside a match, read leniently: fields this pilot does not know (added by a
 * newer matcher) are dropped instead of making the whole match unreadable. Submissions stay strict.
 */
const matchedDescriptionSchema = z.preprocess(
  (value) => dropUnknownKeys(jobDescriptionSchema, value),
  jobDescriptionSchema,
);

export const matchedJobSchema = z.object({
  ...jobRef,
  owner: z.string(),
  group: z.string(),
  vo: z.string(),
  description: matchedDescriptionSchema,
  /** Cores granted to this attempt (between the job's min and max, within the offer). */
  cores: z.int().min(1),
  /** Memory the job may use, MB (0 = no requirement); the pilot holds it in its slot. */
  memoryMB: z.int().min(0).optional(),
  /** The offered GPUs given to this job (ids from the offer). */
  gpuIds: z.array(z.string()).optional(),
  jobToken: z.string(),
});
export type MatchedJob = z.infer<typeof matchedJobSchema>;

export const jobCommandSchema = z.strictObject({ ...jobRef, command: z.enum(['kill']) });
export type JobCommand = z.infer<typeof jobCommandSchema>;

const matcherMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('welcome'), v, pilotId: ident, heartbeatIntervalMs: z.int().positive() }),
  // Lenient like the job inside it: a newer matcher may add fields a pilot does not need.
  z.object({
    type: z.literal('match'),
    v,
    offerId: ident,
    matchSeq: z.int().min(1),
    job: matchedJobSchema,
    /** More matches for the same offer come right after this frame (an offer with `maxJobs`). */
    following: z.int().min(0).max(MAX_JOBS_PER_OFFER).optional(),
  }),
  z.strictObject({ type: z.literal('parked'), v, offerId: ident }),
  z.strictObject({ type: z.literal('no-match'), v, offerId: ident, retryAfterMs: z.int().min(0) }),
  z.strictObject({ type: z.literal('offer.cancelled'), v, offerId: ident }),
  z.strictObject({
    type: z.literal('ack'),
    v,
    ref: z.int().min(0),
    /** For `job.statuses`: the attempts whose reports were refused for good (the rest are stored). */
    refused: z.array(z.strictObject({ ...jobRef, code: z.string(), message: z.string() })).optional(),
  }),
  z.strictObject({ type: z.literal('commands'), v, commands: z.array(jobCommandSchema) }),
  /** Stop taking work and leave once the running jobs end (an administrator's `pilots drain`). */
  z.strictObject({ type: z.literal('drain'), v, reason: z.string().max(1024) }),
  z.strictObject({
    type: z.literal('error'),
    v,
    code: z.string(),
    message: z.string(),
    ref: z.int().min(0).optional(),
  }),
]);
export type MatcherMessage = z.infer<typeof matcherMessageSchema>;

/** Distributes Omit over a union so each message keeps its own fields. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type PilotMessageBody = DistributiveOmit<PilotMessage, 'v'>;
export type MatcherMessageBody = DistributiveOmit<MatcherMessage, 'v'>;

export function encodeMessage(body: PilotMessageBody | MatcherMessageBody): string {
  return JSON.stringify({ ...body, v: PROTOCOL_VERSION });
}

/** `maxFrameBytes`: the matcher's configured frame limit (its WebSocket server enforces it in bytes). */
export function parsePilotMessage(frame: string, maxFrameBytes = MAX_FRAME_BYTES): PilotMessage {
  pilotMessageSchema ??= buildPilotMessageSchema();
  return parseFrame(frame, pilotMessageSchema, maxFrameBytes);
}

export function parseMatcherMessage(frame: string): MatcherMessage {
  return parseFrame(frame, matcherMessageSchema, MAX_FRAME_BYTES);
}

function parseFrame<T>(frame: string, schema: z.ZodType<T>, maxFrameBytes: number): T {
  // Characters, not bytes: never more than the bytes the WebSocket layer already bounded.
  if (frame.length > maxFrameBytes) {
    throw new PilothouseError('PROTOCOL_VIOLATION', `frame exceeds ${maxFrameBytes} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(frame);
  } catch {
    throw new PilothouseError('PROTOCOL_VIOLATION', 'frame is not JSON');
  }
  if (typeof value === 'object' && value !== null && 'v' in value && value.v !== PROTOCOL_VERSION) {
    throw new PilothouseError(
      'PROTOCOL_VERSION',
      `protocol version ${String(value.v)} is not supported (speaks ${PROTOCOL_VERSION})`,
    );
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue ? issue.path.join('.') : '';
    throw new PilothouseError('PROTOCOL_VIOLATION', `invalid frame: ${field} ${issue?.message ?? ''}`.trim(), {
      field,
    });
  }
  return result.data;
}

/** Rebuilds a PilothouseError from an error frame (unknown codes become INTERNAL). */
export function errorFromFrame(frame: { code: string; message: string }): PilothouseError {
  return new PilothouseError(isErrorCode(frame.code) ? frame.code : 'INTERNAL', frame.message);
}
