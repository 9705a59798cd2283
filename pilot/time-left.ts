/**
 * When does this pilot's batch slot end? Each source that applies gives an end time; the earliest
 * wins. Sources: a configured limit (--wall-time-sec, from the pilot's start), SLURM (the job's end
 * time, from SLURM_JOB_END_TIME or squeue), HTCondor (the job ad's MaxRuntime or MaxWallTimeMins from
 * the start date), PBS/Torque (`qstat -f`: walltime limit minus walltime used) and the WLCG
 * machine/job features ($JOBFEATURES, $MACHINEFEATURES). Batch commands are run rarely (the end time
 * is kept and time left is recomputed from it before every offer); the parsers are pure, for tests.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CommandRunner } from './gpu-probe.ts';

export interface SlotEnd {
  /** Where the figure came from, e.g. `slurm`, `htcondor`, `pbs`, `mjf`, `configured`. */
  source: string;
  endsAtMs: number;
}

export interface BatchInfo {
  /** The batch system the pilot runs under, if it could tell (slurm, htcondor, pbs, lsf, sge). */
  system: string | null;
  jobId: string | null;
}

/** Which batch system started this process, from the variables each one sets. */
export function detectBatchSystem(env: NodeJS.ProcessEnv): BatchInfo {
  if (env['SLURM_JOB_ID'] ?? env['SLURM_JOBID'])
    return { system: 'slurm', jobId: env['SLURM_JOB_ID'] ?? env['SLURM_JOBID'] ?? null };
  if (env['_CONDOR_JOB_AD']) return { system: 'htcondor', jobId: env['CONDOR_JOBID'] ?? env['HTCONDOR_JOBID'] ?? null };
  if (env['PBS_JOBID']) return { system: 'pbs', jobId: env['PBS_JOBID'] };
  if (env['LSB_JOBID']) return { system: 'lsf', jobId: env['LSB_JOBID'] };
  if (env['JOB_ID'] && env['SGE_TASK_ID'] !== undefined) return { system: 'sge', jobId: env['JOB_ID'] };
  return { system: null, jobId: null };
}

/** `[D-]HH:MM:SS`, `MM:SS`, `SS` (SLURM's %L and PBS walltime) in seconds; null for UNLIMITED and the like. */
export function parseDuration(text: string): number | null {
  const match = /^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$/.exec(text.trim());
  if (!match) return null;
  const days = Number(match[1] ?? 0);
  const parts = [match[2], match[3], match[4]].filter((part): part is string => part !== undefined).map(Number);
  // With a day prefix SLURM's first part is hours; without, the parts are right-aligned (H:M:S, M:S, S).
  let seconds = 0;
  if (match[1] !== undefined) {
    const [hours = 0, minutes = 0, secs = 0] = parts;
    seconds = hours * 3600 + minutes * 60 + secs;
  } else {
    for (const part of parts) seconds = seconds * 60 + part;
  }
  return days * 86_400 + seconds;
}

/** `squeue -h -j ID -o %L` (time left); null when unlimited or unknown. */
export function parseSqueueTimeLeft(text: string): number | null {
  const line = text.trim().split(/\r?\n/)[0]?.trim() ?? '';
  if (line === '' || /UNLIMITED|INVALID|NOT_SET/i.test(line)) return null;
  return parseDuration(line);
}

/** The attributes of a ClassAd in its long text form (`Name = value` per line). */
export function parseClassAd(text: string): Map<string, string> {
  const ad = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (match) ad.set((match[1] as string).toLowerCase(), (match[2] as string).replace(/^"(.*)"$/, '$1'));
  }
  return ad;
}

/** End of an HTCondor job from its ad: start date plus MaxRuntime (s) or MaxWallTimeMins. */
export function htcondorEnd(ad: Map<string, string>, fallbackStartMs: number): number | null {
  const number = (name: string): number | null => {
    const value = ad.get(name.toLowerCase());
    return value !== undefined && /^\d+(\.\d+)?$/.test(value) ? Number(value) : null;
  };
  const limitSec =
    number('MaxRuntime') ?? ((minutes) => (minutes === null ? null : minutes * 60))(number('MaxWallTimeMins'));
  if (limitSec === null || limitSec <= 0) return null;
  const startSec = number('JobCurrentStartDate') ?? number('JobStartDate');
  return (startSec === null ? fallbackStartMs : startSec * 1000) + limitSec * 1000;
}

/** `qstat -f JOBID`: seconds left = Resource_List.walltime − resources_used.walltime. */
export function parseQstatTimeLeft(text: string): number | null {
  const value = (name: string): number | null => {
    const match = new RegExp(`^\\s*${name.replace('.', '\\.')}\\s*=\\s*(\\S+)`, 'm').exec(text);
    return match ? parseDuration(match[1] as string) : null;
  };
  const limit = value('Resource_List.walltime');
  if (limit === null) return null;
  return Math.max(0, limit - (value('resources_used.walltime') ?? 0));
}

/** WLCG job/machine features: the earliest of jobstart+wall_limit, shutdowntime_job, shutdowntime. */
export function mjfEnd(features: {
  jobstartSecs?: number;
  wallLimitSecs?: number;
  shutdowntimeJob?: number;
  shutdowntime?: number;
}): number | null {
  const ends: number[] = [];
  if (features.wallLimitSecs !== undefined && features.jobstartSecs !== undefined)
    ends.push((features.jobstartSecs + features.wallLimitSecs) * 1000);
  if (features.shutdowntimeJob !== undefined) ends.push(features.shutdowntimeJob * 1000);
  if (features.shutdowntime !== undefined) ends.push(features.shutdowntime * 1000);
  return ends.length === 0 ? null : Math.min(...ends);
}

/** A numeric MJF key file, or undefined (MJF directories hold one value per file). */
async function readFeature(dir: string | undefined, key: string): Promise<number | undefined> {
  if (dir === undefined || dir === '' || /^https?:/.test(dir)) return undefined;
  try {
    const text = (await readFile(path.join(dir, key), 'utf8')).trim();
    return /^\d+(\.\d+)?$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

/** Limits the WLCG job features give the pilot's slot, beyond its end time. */
export interface JobFeatureLimits {
  cores: number | null;
  memoryMB: number | null;
  diskMB: number | null;
}

export async function readJobFeatureLimits(env: NodeJS.ProcessEnv): Promise<JobFeatureLimits> {
  const dir = env['JOBFEATURES'];
  const [cores, rss, scratch] = await Promise.all([
    readFeature(dir, 'allocated_cpu'),
    readFeature(dir, 'max_rss_bytes'),
    readFeature(dir, 'scratch_limit_bytes'),
  ]);
  return {
    cores: cores !== undefined && cores >= 1 ? Math.floor(cores) : null,
    memoryMB: rss !== undefined && rss > 0 ? Math.floor(rss / (1024 * 1024)) : null,
    diskMB: scratch !== undefined && scratch > 0 ? Math.floor(scratch / (1024 * 1024)) : null,
  };
}

export interface TimeLeftDeps {
  env: NodeJS.ProcessEnv;
  run: CommandRunner;
  readText: (file: string) => Promise<string | null>;
  nowMs: () => number;
  /** When the pilot started (a configured limit counts from here). */
  startMs: number;
  configuredWallTimeSec: number | null;
}

/** Every end time the pilot can find, earliest first. */
export async function findSlotEnds(deps: TimeLeftDeps): Promise<SlotEnd[]> {
  const { env, run, nowMs } = deps;
  const ends: SlotEnd[] = [];
  if (deps.configuredWallTimeSec !== null)
    ends.push({ source: 'configured', endsAtMs: deps.startMs + deps.configuredWallTimeSec * 1000 });

  const slurmJob = env['SLURM_JOB_ID'] ?? env['SLURM_JOBID'];
  if (slurmJob) {
    const endTime = Number(env['SLURM_JOB_END_TIME']);
    if (Number.isFinite(endTime) && endTime > 0) {
      ends.push({ source: 'slurm', endsAtMs: endTime * 1000 });
    } else {
      const out = await run('squeue', ['-h', '-j', slurmJob, '-o', '%L']);
      const left = out === null ? null : parseSqueueTimeLeft(out);
      if (left !== null) ends.push({ source: 'slurm', endsAtMs: nowMs() + left * 1000 });
    }
  }
  const jobAd = env['_CONDOR_JOB_AD'];
  if (jobAd) {
    const text = await deps.readText(jobAd);
    const end = text === null ? null : htcondorEnd(parseClassAd(text), deps.startMs);
    if (end !== null) ends.push({ source: 'htcondor', endsAtMs: end });
  }
  const pbsJob = env['PBS_JOBID'];
  if (pbsJob) {
    const out = await run('qstat', ['-f', pbsJob]);
    const left = out === null ? null : parseQstatTimeLeft(out);
    if (left !== null) ends.push({ source: 'pbs', endsAtMs: nowMs() + left * 1000 });
  }
  if (env['JOBFEATURES'] || env['MACHINEFEATURES']) {
    const [jobstartSecs, wallLimitSecs, shutdowntimeJob, shutdowntime] = await Promise.all([
      readFeature(env['JOBFEATURES'], 'jobstart_secs'),
      readFeature(env['JOBFEATURES'], 'wall_limit_secs'),
      readFeature(env['JOBFEATURES'], 'shutdowntime_job'),
      readFeature(env['MACHINEFEATURES'], 'shutdowntime'),
    ]);
    const end = mjfEnd({
      ...(jobstartSecs === undefined ? { jobstartSecs: deps.startMs / 1000 } : { jobstartSecs }),
      ...(wallLimitSecs === undefined ? {} : { wallLimitSecs }),
      ...(shutdowntimeJob === undefined ? {} : { shutdowntimeJob }),
      ...(shutdowntime === undefined ? {} : { shutdowntime }),
    });
    if (end !== null) ends.push({ source: 'mjf', endsAtMs: end });
  }
  return ends.sort((a, b) => a.endsAtMs - b.endsAtMs);
}
