/**
 * The native job description (JSON) and its validation. Everything that comes from outside is
 * checked here: unknown fields are refused (a typo like `requirments` must not silently drop the
 * requirements), and each error names the offending field.
 */
import { z } from 'zod';
import { PilothouseError } from '../errors.ts';
import { PLATFORM_PATTERN } from './platform.ts';

export const DEFAULT_WALL_TIME_SEC = 86_400; // DIRAC's DefaultCPUTime: one day
export const MAX_WALL_TIME_SEC = 30 * 86_400;
export const MAX_CORES = 1024; // DIRAC's processor range [1, 1024]
export const DEFAULT_PRIORITY = 1;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const SHA256_REF = /^sha256:[0-9a-f]{64}$/;
/** A plain file name in the job's directory: no directory, nothing hidden, nothing to escape with. */
const STREAM_FILE = /^(?:[A-Za-z0-9_]|%j)(?:[A-Za-z0-9_.+-]|%j){0,127}$/;
const STREAM_FILE_MESSAGE = 'a file name of letters, digits and _.+- (no directory; %j stands for the job id)';

const siteName = z.string().regex(NAME, 'site names are 1-128 characters of letters, digits and _.:@+-');
const tagName = z.string().regex(NAME, 'tags are 1-128 characters of letters, digits and _.:@+-');

const coresSchema = z
  .strictObject({
    min: z.int().min(1).max(MAX_CORES).default(1),
    max: z.int().min(1).max(MAX_CORES).optional(),
  })
  .transform((cores) => ({ min: cores.min, max: cores.max ?? cores.min }))
  .refine((cores) => cores.max >= cores.min, { message: 'cores.max must be at least cores.min', path: ['max'] });

const gpusSchema = z
  .strictObject({
    min: z.int().min(1).max(64).default(1),
    max: z.int().min(1).max(64).optional(),
    /** Any of these models (case-insensitive substring of the GPU's name), e.g. ["A100", "H100"]. */
    models: z.array(z.string().min(1).max(128)).max(32).default([]),
    minMemoryMB: z.int().min(1).optional(),
  })
  .transform((gpus) => ({ ...gpus, max: gpus.max ?? gpus.min }))
  .refine((gpus) => gpus.max >= gpus.min, { message: 'gpus.max must be at least gpus.min', path: ['max'] });

export const requirementsSchema = z
  .strictObject({
    cores: coresSchema.default({ min: 1, max: 1 }),
    /** The job wants a whole node to itself: it is given every core of a pilot that has nothing else running. */
    wholeNode: z.boolean().default(false),
    /** Memory for the whole job, MB; added to memoryPerCoreMB × cores when both are given. */
    memoryMB: z
      .int()
      .min(1)
      .max(16 * 1024 * 1024)
      .optional(),
    memoryPerCoreMB: z
      .int()
      .min(1)
      .max(1024 * 1024)
      .optional(),
    gpus: gpusSchema.optional(),
    wallTimeSec: z.int().min(1).max(MAX_WALL_TIME_SEC).default(DEFAULT_WALL_TIME_SEC),
    /** Normalised CPU work (power units × core-seconds, DB12-style); checked against time left × the pilot's CPU power. */
    cpuWork: z.number().positive().max(1e12).optional(),
    platform: z
      .string()
      .regex(
        PLATFORM_PATTERN,
        'platform is ARCH or ARCH-vLEVEL, e.g. x86_64-v2 (ARCH: x86_64, aarch64, ppc64le, riscv64)',
      )
      .optional(),
    /** Scratch disk in the job's working directory, MB. */
    diskMB: z.int().min(1).optional(),
    sites: z.array(siteName).max(1000).default([]),
    bannedSites: z.array(siteName).max(1000).default([]),
    ces: z.array(siteName).max(1000).default([]),
    tags: z.array(tagName).max(100).default([]),
  })
  .superRefine((req, ctx) => {
    const banned = new Set(req.bannedSites);
    const both = req.sites.filter((site) => banned.has(site));
    if (both.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['bannedSites'],
        message: `site ${both.join(', ')} is both required and banned`,
      });
    }
    if (req.wholeNode && req.cores.max !== req.cores.min && req.cores.max < MAX_CORES) {
      // Whole-node jobs take what the node has; a max below the node size would contradict that.
      ctx.addIssue({ code: 'custom', path: ['wholeNode'], message: 'a whole-node job cannot also set cores.max' });
    }
  });

export const jobDescriptionSchema = z.strictObject({
  name: z.string().min(1).max(256).default('job'),
  executable: z.string().min(1, 'executable must not be empty').max(4096),
  arguments: z.array(z.string().max(65_536)).max(4096).default([]),
  environment: z
    .record(z.string().regex(ENV_NAME, 'environment names are letters, digits and _'), z.string().max(65_536))
    .default({}),
  inputSandbox: z
    .array(z.string().regex(SHA256_REF, 'input sandboxes are referenced as sha256:<64 hex>'))
    .max(100)
    .default([]),
  outputSandbox: z.array(z.string().min(1).max(1024)).max(1000).default([]),
  /** Files the payload's standard output and error are written to, in its working directory. */
  stdout: z.string().regex(STREAM_FILE, STREAM_FILE_MESSAGE).default('std.out'),
  stderr: z.string().regex(STREAM_FILE, STREAM_FILE_MESSAGE).default('std.err'),
  /** Grid data the job reads (DIRAC's InputData, LFNs): kept with the job for its payload and for searches. */
  inputData: z.array(z.string().min(1).max(4096)).max(500).default([]),
  /** Bookkeeping group (DIRAC's JobGroup), e.g. a production or an analysis campaign. */
  jobGroup: z.string().regex(NAME, 'job groups are 1-128 characters of letters, digits and _.:@+-').optional(),
  /** Attributes a JDL carried that Pilothouse does not act on, kept as they were (DIRAC's extraFields). */
  extraFields: z
    .record(z.string().max(128), z.json())
    .refine((fields) => Object.keys(fields).length <= 200, 'at most 200 extra fields')
    .default({}),
  jobType: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'job types are letters, digits, _ and -')
    .default('User'),
  priority: z.int().min(0).max(10).default(DEFAULT_PRIORITY),
  requirements: requirementsSchema.default({
    cores: { min: 1, max: 1 },
    wholeNode: false,
    wallTimeSec: DEFAULT_WALL_TIME_SEC,
    sites: [],
    bannedSites: [],
    ces: [],
    tags: [],
  }),
});

export type JobDescription = z.output<typeof jobDescriptionSchema>;
export type JobRequirements = JobDescription['requirements'];
export type JobDescriptionInput = z.input<typeof jobDescriptionSchema>;

/** Validates one description; `fieldPrefix` names where it sits in the request (e.g. `[3]`). */
export function parseJobDescription(raw: unknown, fieldPrefix = ''): JobDescription {
  const result = jobDescriptionSchema.safeParse(raw);
  if (result.success) return result.data;
  throw validationError(result.error, fieldPrefix);
}

/** Validates one description or an array of at most `maxJobs` of them, all or nothing. */
export function parseJobDescriptions(raw: unknown, limits: { maxJobs: number }): JobDescription[] {
  if (Array.isArray(raw)) {
    if (raw.length === 0) {
      throw new PilothouseError('VALIDATION_FAILED', 'a bulk submission must hold at least one job', { field: '' });
    }
    if (raw.length > limits.maxJobs) {
      throw new PilothouseError(
        'SUBMISSION_TOO_LARGE',
        `a submission holds at most ${limits.maxJobs} jobs (this one ${raw.length}; see --max-jobs-per-submission)`,
        { field: '', maxJobs: limits.maxJobs },
      );
    }
    return raw.map((item, index) => parseJobDescription(item, `[${index}]`));
  }
  return [parseJobDescription(raw)];
}

export function validationError(error: z.ZodError, fieldPrefix = ''): PilothouseError {
  const issue = error.issues[0];
  if (!issue) return new PilothouseError('VALIDATION_FAILED', 'invalid value', { field: fieldPrefix });
  let path = issue.path.map((part) => String(part));
  if (issue.code === 'unrecognized_keys') path = [...path, issue.keys[0] ?? ''];
  const field = joinFieldPath(fieldPrefix, path);
  const message =
    issue.code === 'unrecognized_keys' ? `unknown field ${field}` : `${field || 'body'}: ${issue.message}`;
  return new PilothouseError('VALIDATION_FAILED', message, { field });
}

function joinFieldPath(prefix: string, parts: string[]): string {
  let out = prefix;
  for (const part of parts) {
    out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  }
  return out;
}
