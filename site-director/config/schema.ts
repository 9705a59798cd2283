/**
 * The site director's configuration file, as written by an operator (YAML or JSON): sites → CEs →
 * queues. Every key is checked (unknown keys are refused, so a typo never silently drops a cap), and
 * credentials are paths only: no field takes a secret inline. Defaults and units are in the names and
 * in docs/site-director.md.
 */
import { z } from 'zod';
import { parseMatcherUrls } from '../../shared/endpoints.ts';
import { PLATFORM_PATTERN } from '../../shared/job/platform.ts';
import { nameSchema } from '../../shared/protocol/site-director.ts';

const path = z.string().min(1).max(4096).regex(/^\S+$/, 'a path without spaces');
const seconds = (min = 1) =>
  z
    .int()
    .min(min)
    .max(10 * 365 * 86_400);

const sshTargetSchema = z.strictObject({
  host: z.string().min(1).max(255),
  port: z.int().min(1).max(65_535).default(22),
  user: z.string().min(1).max(64).optional(),
  /** Private key (path). Default: ssh's own (agent, ~/.ssh). */
  keyFile: path.optional(),
  /** known_hosts to check the host key against. Default: the user's. */
  knownHostsFile: path.optional(),
  /** More ssh -o options, e.g. ProxyJump=bastion.example.org. */
  options: z
    .array(z.string().regex(/^[A-Za-z]+=\S+$/, 'Option=value'))
    .max(20)
    .default([]),
});

const backendSchemas = {
  local: z.strictObject({ workDir: path.optional() }).default({}),
  ssh: sshTargetSchema.extend({ workDir: path.default('.pilothouse/pilots') }),
  slurm: z
    .strictObject({
      /** Default: the queue's name. */
      partition: nameSchema.optional(),
      account: nameSchema.optional(),
      submitOptions: z
        .array(z.string().regex(/^--?[A-Za-z]/, 'an sbatch option'))
        .max(50)
        .default([]),
      outputDir: path.default('.pilothouse/slurm'),
      /** sacct answers for jobs slurmctld has forgotten (slurmdbd). */
      accounting: z.boolean().default(true),
      /** Run the SLURM commands on this login node over SSH (default: here). */
      login: sshTargetSchema.optional(),
    })
    .default({ submitOptions: [], outputDir: '.pilothouse/slurm', accounting: true }),
  htcondor: z
    .strictObject({
      /** The CE's collector, HOST:PORT (default: the CE name, port 9619). */
      pool: z
        .string()
        .regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, 'HOST:PORT')
        .optional(),
      mode: z.enum(['remote-schedd', 'local-schedd']).default('remote-schedd'),
      tokenFile: path.optional(),
      workDir: path.default('.pilothouse/htcondor'),
      extraSubmit: z
        .array(
          z
            .string()
            .max(1024)
            .regex(/^[^\n]*$/, 'one line'),
        )
        .max(50)
        .default([]),
      login: sshTargetSchema.optional(),
    })
    .default({ mode: 'remote-schedd', workDir: '.pilothouse/htcondor', extraSubmit: [] }),
  arc: z.strictObject({
    /** A-REX REST base, https://HOST:PORT/arex/rest/1.0 (default: https://CE:443/arex/rest/1.0). */
    url: z.url({ protocol: /^https$/ }).optional(),
    caFile: path.optional(),
    certFile: path.optional(),
    keyFile: path.optional(),
    tokenFile: path.optional(),
  }),
} as const;

const capsSchema = {
  /** Pilots submitted and not started yet, at most. */
  maxWaitingPilots: z.int().min(0).max(1_000_000).optional(),
  /** Pilots at the queue at once, waiting or running. */
  maxRunningPilots: z.int().min(0).max(1_000_000).optional(),
  maxPilotsPerCycle: z.int().min(0).max(10_000).optional(),
};

const pilotOptionsSchema = z.strictObject({
  /** Cores each pilot asks its batch job for (default: the queue's maxCores). */
  coresPerPilot: z.int().min(1).max(100_000).optional(),
  /** Memory each pilot asks for, MB (default: the queue's memoryMB). */
  memoryMB: z.int().min(0).optional(),
  idleTimeoutSec: seconds(0).optional(),
  extraArgs: z.array(z.string().max(1024)).max(50).optional(),
  /** Node.js executables to try on the worker node before PATH (e.g. on CVMFS). */
  nodePaths: z.array(path).max(20).optional(),
  /** Copies of dist/pilot.mjs already on the worker nodes (used when their sha256 matches). */
  bundlePaths: z.array(path).max(20).optional(),
  /** CA bundle on the worker node that verifies an https matcher. */
  caFile: path.optional(),
});

const queueSchema = z.strictObject({
  name: nameSchema,
  /** The batch system's name for it: SLURM partition, ARC queue (default: the CE's partition, else the name). */
  batchQueue: nameSchema.optional(),
  vos: z.array(nameSchema).min(1).max(50).optional(),
  maxCores: z.int().min(1).max(100_000).default(1),
  /** Memory of one batch job of the queue, MB (0: unknown/unlimited). */
  memoryMB: z.int().min(0).default(0),
  gpus: z.int().min(0).max(64).default(0),
  gpuModel: z.string().min(1).max(128).optional(),
  gpuMemoryMB: z.int().min(0).optional(),
  /** The queue's wall-time limit; absent: none. */
  wallTimeSec: seconds().optional(),
  platform: z.string().regex(PLATFORM_PATTERN, 'ARCH or ARCH-vLEVEL, e.g. x86_64-v3').optional(),
  tags: z.array(nameSchema).max(100).default([]),
  requiredTags: z.array(nameSchema).max(100).default([]),
  wholeNode: z.boolean().default(false),
  diskMB: z.int().min(0).optional(),
  cpuPower: z.number().positive().optional(),
  ...capsSchema,
  pilot: pilotOptionsSchema.default({}),
});

const ceBase = {
  name: nameSchema,
  vos: z.array(nameSchema).min(1).max(50).optional(),
  tags: z.array(nameSchema).max(100).default([]),
  requiredTags: z.array(nameSchema).max(100).default([]),
  ...capsSchema,
  pilot: pilotOptionsSchema.default({}),
  queues: z.array(queueSchema).min(1).max(1000),
};

const ceSchema = z.discriminatedUnion('type', [
  z.strictObject({ ...ceBase, type: z.literal('local'), local: backendSchemas.local }),
  z.strictObject({ ...ceBase, type: z.literal('ssh'), ssh: backendSchemas.ssh }),
  z.strictObject({ ...ceBase, type: z.literal('slurm'), slurm: backendSchemas.slurm }),
  z.strictObject({ ...ceBase, type: z.literal('htcondor'), htcondor: backendSchemas.htcondor }),
  z.strictObject({ ...ceBase, type: z.literal('arc'), arc: backendSchemas.arc }),
]);
export type CeFileConfig = z.infer<typeof ceSchema>;

const siteSchema = z.strictObject({
  name: nameSchema,
  vos: z.array(nameSchema).min(1).max(50).optional(),
  ces: z.array(ceSchema).min(1).max(1000),
});

const backoffSchema = (initial: number, max: number) =>
  z
    .strictObject({ initialBackoffSec: seconds().default(initial), maxBackoffSec: seconds().default(max) })
    .default({ initialBackoffSec: initial, maxBackoffSec: max });

export const directorFileSchema = z.strictObject({
  name: nameSchema,
  /** The matcher as worker nodes reach it, one URL or several comma-separated (default: --matcher). */
  pilotMatcherUrl: z
    .string()
    .max(4000)
    .refine((list) => {
      try {
        return parseMatcherUrls(list).length > 0;
      } catch {
        return false;
      }
    }, 'http(s) URLs separated by commas')
    .optional(),
  cycle: z
    .strictObject({
      /** node-cron expression (a sixth, leading field is seconds). */
      schedule: z.string().min(9).max(200).default('*/1 * * * *'),
      /** CEs served at once. */
      parallelCes: z.int().min(1).max(256).default(8),
      /** Any one call to a CE gives up after this. */
      ceTimeoutSec: seconds().max(3600).default(120),
      /** A pilot its CE has not known for this long is Lost. */
      lostAfterSec: seconds(60).default(3600),
      /** Local backends keep their pilots' directories here (relative: to this file). */
      stateDir: path.default('site-director-state'),
    })
    .default({
      schedule: '*/1 * * * *',
      parallelCes: 8,
      ceTimeoutSec: 120,
      lostAfterSec: 3600,
      stateDir: 'site-director-state',
    }),
  throttles: z
    .strictObject({
      ceErrors: backoffSchema(60, 3600),
      emptyPilots: z
        .strictObject({
          /** Pilots in a row that matched nothing before the queue backs off. */
          threshold: z.int().min(1).max(1000).default(3),
          initialBackoffSec: seconds().default(300),
          maxBackoffSec: seconds().default(3600),
        })
        .default({ threshold: 3, initialBackoffSec: 300, maxBackoffSec: 3600 }),
      missedPilots: z
        .strictObject({
          /** Pilots that ended without ever reaching the matcher, counted over this window... */
          windowSec: seconds(60).default(3600),
          /** ...stop submissions to the CE once there are this many. */
          max: z.int().min(1).max(100_000).default(10),
        })
        .default({ windowSec: 3600, max: 10 }),
    })
    .default({
      ceErrors: { initialBackoffSec: 60, maxBackoffSec: 3600 },
      emptyPilots: { threshold: 3, initialBackoffSec: 300, maxBackoffSec: 3600 },
      missedPilots: { windowSec: 3600, max: 10 },
    }),
  /** Defaults for every queue's pilots. */
  pilot: pilotOptionsSchema.extend({ secretTtlSec: seconds(60).optional() }).default({}),
  sites: z.array(siteSchema).min(1).max(10_000),
});
export type DirectorFileConfig = z.infer<typeof directorFileSchema>;
