/** Client commands on jobs: submit, status, jobs (search), output. */
import path from 'node:path';
import { Command } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import type { JobView, JobWithHistory } from '../../shared/job/model.ts';
import { MatcherClient, type ClientOptions } from '../client.ts';
import { exitCodeFor } from '../exit.ts';
import { printJson, table } from '../format.ts';
import { createProgress } from '../progress.ts';
import { unpackOutputSandbox } from '../unpack-output.ts';
import { ensureUploaded, packInputFiles, type PackedSandbox } from '../input-sandbox.ts';
import { readJobs, readText, type ReadJob } from '../job-files.ts';

interface CommonOptions extends ClientOptions {
  json?: boolean;
}

/** Adds --matcher, --token-file, --ca-file and --json to a client command. */
export function clientCommand(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .option(
      '--matcher <urls>',
      'matcher base URL, or several comma-separated tried in turn (env PILOTHOUSE_MATCHER)',
      undefined,
    )
    .option('--token-file <file>', 'file holding a user token (env PILOTHOUSE_TOKEN_FILE or PILOTHOUSE_TOKEN)')
    .option('--ca-file <file>', 'CA bundle (PEM) that verifies an https matcher (env PILOTHOUSE_CA_FILE)')
    .option('--json', 'print JSON for scripts', false);
}

/** Packs each distinct set of local input files once, uploads what the matcher lacks, and names it in the jobs. */
export async function attachInputSandboxes(client: MatcherClient, jobs: ReadJob[]): Promise<number> {
  const packs = new Map<string, PackedSandbox>();
  for (const job of jobs) {
    if (job.localInputFiles.length === 0) continue;
    const key = JSON.stringify([job.baseDir, [...job.localInputFiles].sort()]);
    let pack = packs.get(key);
    if (pack === undefined) {
      pack = await packInputFiles(job.baseDir, job.localInputFiles);
      packs.set(key, pack);
    }
    const refs = (job.description['inputSandbox'] as string[] | undefined) ?? [];
    job.description['inputSandbox'] = [...refs, pack.ref];
  }
  return ensureUploaded(client, [...new Map([...packs.values()].map((pack) => [pack.ref, pack])).values()]);
}

/**
 * What goes to the matcher: the expanded descriptions, or, for one JDL whose jobs share their input
 * files, the JDL itself with its packed sandbox, expanded by the matcher (a 100,000-job parametric
 * JDL stays a few hundred bytes on the wire).
 */
export async function submissionBody(files: string[], jobs: ReadJob[]): Promise<unknown> {
  const [file] = files;
  const [first] = jobs;
  const localFiles = (job: ReadJob) => JSON.stringify([...job.localInputFiles].sort());
  const oneJdl = files.length === 1 && file !== undefined && file.toLowerCase().endsWith('.jdl');
  if (oneJdl && first !== undefined && jobs.every((job) => localFiles(job) === localFiles(first))) {
    // attachInputSandboxes appended the packed sandbox of the local files last.
    const packed = first.localInputFiles.length > 0 ? (first.description['inputSandbox'] as string[]).slice(-1) : [];
    return { jdl: await readText(file), ...(packed.length > 0 && { inputSandbox: packed }) };
  }
  return jobs.map((job) => job.description);
}

/** Above this many bytes the submission itself shows a progress bar while it is sent. */
const SUBMIT_PROGRESS_ABOVE_BYTES = 1024 * 1024;

export function submitCommand(): Command {
  return clientCommand(
    'submit',
    'submit the jobs described in JSON files (one job or an array each; - reads stdin) or DIRAC JDL files (*.jdl), all in one all-or-nothing request; local input files are packed and uploaded once',
  )
    .argument('<files...>', 'job description files')
    .action(async (files: string[], options: CommonOptions) => {
      const client = await MatcherClient.fromOptions(options);
      const jobs = await readJobs(files, (message) => process.stderr.write(`warning: ${message}\n`));
      if (jobs.length === 0)
        throw new PilothouseError('VALIDATION_FAILED', 'no job in the given files', { field: 'file' });
      const uploaded = await attachInputSandboxes(client, jobs);
      const body = Buffer.from(JSON.stringify(await submissionBody(files, jobs)));
      const progress =
        body.length > SUBMIT_PROGRESS_ABOVE_BYTES
          ? createProgress(`submitting ${jobs.length} jobs`, body.length)
          : null;
      let jobIds: number[];
      try {
        ({
          body: { jobIds },
        } = await client.sendBytes<{ jobIds: number[] }>('POST', '/api/jobs', body, 'application/json', (sent) =>
          progress?.update(sent),
        ));
      } catch (error) {
        if (error instanceof PilothouseError && error.details.field?.startsWith('[')) {
          const index = Number(/^\[(\d+)\]/.exec(error.details.field)?.[1] ?? 0);
          throw new PilothouseError(
            error.code,
            `job #${index + 1}: ${error.message} (no job was submitted)`,
            error.details,
          );
        }
        throw error;
      }
      progress?.finish();
      if (options.json) printJson({ jobIds, sandboxesUploaded: uploaded });
      else process.stdout.write(`${jobIds.length === 1 ? 'job' : 'jobs'} ${compactIds(jobIds)} submitted\n`);
    });
}

function compactIds(ids: number[]): string {
  if (ids.length <= 10) return ids.join(' ');
  return `${ids[0]}..${ids[ids.length - 1]} (${ids.length})`;
}

export function statusCommand(): Command {
  return clientCommand('status', 'show jobs with their status (and history with --history)')
    .argument('<ids...>', 'job ids')
    .option('--history', 'also print each status change', false)
    .action(async (ids: string[], options: CommonOptions & { history: boolean }) => {
      const client = await MatcherClient.fromOptions(options);
      const jobs: JobWithHistory[] = [];
      for (const id of ids)
        jobs.push((await client.json<JobWithHistory>('GET', `/api/jobs/${encodeURIComponent(id)}`)).body);
      if (options.json) {
        printJson(jobs.length === 1 ? jobs[0] : jobs);
        return;
      }
      process.stdout.write(`${jobTable(jobs)}\n`);
      if (options.history) {
        for (const job of jobs) {
          process.stdout.write(`\njob ${job.id}\n`);
          process.stdout.write(
            `${table(
              ['time', 'status', 'minor status', 'application status', 'source'],
              job.history.map((h) => [
                h.at,
                h.applied ? h.status : `(${h.status})`,
                h.minorStatus,
                h.applicationStatus,
                h.source,
              ]),
            )}\n`,
          );
        }
      }
    });
}

function jobTable(jobs: JobView[]): string {
  return table(
    ['id', 'status', 'minor status', 'exit', 'site', 'owner', 'name'],
    jobs.map((j) => [j.id, j.status, j.minorStatus, j.exitCode, j.site, j.owner, j.name]),
  );
}

export function outputCommand(): Command {
  return clientCommand('output', "download jobs' output sandboxes and unpack each into its own directory")
    .argument('<ids...>', 'job ids')
    .option('--dir <dir>', 'where to unpack: one job into DIR itself, several into DIR/job-<id> (default ./job-<id>)')
    .action(async (ids: string[], options: CommonOptions & { dir?: string }) => {
      const client = await MatcherClient.fromOptions(options);
      const one = ids.length === 1;
      const results: ({ jobId: string; dir: string; files: string[] } | { jobId: string; error: PilothouseError })[] =
        [];
      for (const [index, id] of ids.entries()) {
        const dir = path.resolve(one && options.dir ? options.dir : path.join(options.dir ?? '.', `job-${id}`));
        try {
          const archive = await client.download(`/api/jobs/${encodeURIComponent(id)}/output`);
          results.push({ jobId: id, dir, files: await unpackOutputSandbox(archive, dir) });
        } catch (error) {
          // One job without output does not keep the others from coming back; a dead matcher does.
          if (one || !(error instanceof PilothouseError) || error.retryable) throw error;
          results.push({ jobId: id, error });
        }
        if (!options.json && !one) process.stderr.write(`\r${index + 1}/${ids.length} job(s)`);
      }
      if (!options.json && !one) process.stderr.write('\n');
      const failed = results.filter((r) => 'error' in r);
      if (options.json) {
        const shown = results.map((r) => ('error' in r ? { jobId: r.jobId, error: r.error.toJSON() } : r));
        printJson(one ? shown[0] : shown);
      } else {
        for (const r of results) {
          if ('error' in r) process.stdout.write(`job ${r.jobId}: ${r.error.message}\n`);
          else process.stdout.write(`job ${r.jobId}: ${r.files.length} file(s) in ${r.dir}: ${r.files.join(' ')}\n`);
        }
      }
      const first = failed[0];
      if (first && 'error' in first) {
        // The results above already say which jobs failed; the exit code says what the first failure was.
        process.stderr.write(
          `pilothouse: ${failed.length} of ${results.length} job(s) gave no output (job ${first.jobId}: ${first.error.message})\n`,
        );
        process.exitCode = exitCodeFor(first.error);
      }
    });
}

/** POSTs `/api/jobs/{id}/{action}` for each id in turn, collecting the answers. */
async function postToEachJob<T>(options: CommonOptions, ids: string[], action: string): Promise<T[]> {
  const client = await MatcherClient.fromOptions(options);
  const results: T[] = [];
  for (const id of ids) {
    results.push((await client.json<T>('POST', `/api/jobs/${encodeURIComponent(id)}/${action}`)).body);
  }
  return results;
}

export function killCommand(): Command {
  return clientCommand('kill', 'kill jobs: Killed at once; a running payload is stopped by its pilot within seconds')
    .argument('<ids...>', 'job ids')
    .action(async (ids: string[], options: CommonOptions) => {
      const results = await postToEachJob<{ jobId: number; status: string; killed: boolean }>(options, ids, 'kill');
      if (options.json) printJson(results);
      else
        for (const r of results)
          process.stdout.write(`job ${r.jobId}: ${r.killed ? 'killed' : `not killed (${r.status})`}\n`);
    });
}

export function rescheduleCommand(): Command {
  return clientCommand(
    'reschedule',
    'run jobs again as a new attempt (Done, Failed, Killed, or held by a pilot, whose attempt is killed)',
  )
    .argument('<ids...>', 'job ids')
    .action(async (ids: string[], options: CommonOptions) => {
      const results = await postToEachJob<{ jobId: number; attempt: number; status: string }>(
        options,
        ids,
        'reschedule',
      );
      if (options.json) printJson(results);
      else for (const r of results) process.stdout.write(`job ${r.jobId}: attempt ${r.attempt}, ${r.status}\n`);
    });
}

export function deleteCommand(): Command {
  return clientCommand('delete', 'delete jobs: Deleted, out of sight; a job still running is killed first')
    .argument('<ids...>', 'job ids')
    .action(async (ids: string[], options: CommonOptions) => {
      const results = await postToEachJob<{ jobId: number; status: string; deleted: boolean }>(options, ids, 'delete');
      if (options.json) printJson(results);
      else
        for (const r of results)
          process.stdout.write(`job ${r.jobId}: ${r.deleted ? 'deleted' : `already ${r.status}`}\n`);
    });
}
