/**
 * `pilothouse up`: the all-in-one on this machine (the matcher, and a site director that sends local
 * pilots when jobs wait), and
 * `pilothouse demo`: the same, plus example jobs submitted, followed to the end and shown.
 */
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import { createLogger, type Logger } from '../../shared/logger.ts';
import { delay } from '../../shared/backoff.ts';
import { FINAL_STATUSES } from '../../shared/job/status.ts';
import type { JobView } from '../../shared/job/model.ts';
import { compileMatcherConfig } from '../../matcher/config.ts';
import { startMatcher, type RunningMatcher } from '../../matcher/server.ts';
import { MatcherClient } from '../client.ts';
import { table } from '../format.ts';
import { LOCAL_SITE, writeLocalSiteConfig } from '../local-site.ts';
import { probeIsolationHost } from '../../pilot/isolation.ts';
import { startDirectorService, type RunningDirector } from '../../site-director/service.ts';
import { createProgress } from '../progress.ts';
import { unpackOutputSandbox } from '../unpack-output.ts';
import { waitForSignal } from './server.ts';

interface UpOptions {
  dataDir: string;
  listen: string;
  pilots: string;
  coresPerPilot?: string;
  logLevel: string;
}

/** How often the local site director looks for work: the all-in-one should feel immediate. */
const UP_SCHEDULE = '*/3 * * * * *';
const DEMO_SCHEDULE = '* * * * * *';

/**
 * Local pilots isolate payloads whenever this machine can (bubblewrap, or a uid per job as root). On
 * a machine that cannot, the all-in-one still runs, but says plainly that it runs payloads unprotected.
 */
async function localPilotIsolation(): Promise<string[] | undefined> {
  const host = await probeIsolationHost();
  if (host.isRoot || host.bwrapPath !== null) return undefined;
  process.stderr.write(
    'up: bubblewrap is missing or cannot create namespaces here, so the local pilots run payloads with --isolation none (a job could read the pilot token); install bubblewrap to isolate them\n',
  );
  return ['--isolation', 'none'];
}

async function bringUp(
  options: UpOptions,
  logger: Logger,
  schedule: string,
): Promise<{ matcher: RunningMatcher; director: RunningDirector; adminToken: string }> {
  const count = Number(options.pilots);
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    throw new PilothouseError('CONFIG_INVALID', '--pilots must be an integer from 1 to 64', { field: 'pilots' });
  }
  const cores = options.coresPerPilot === undefined ? os.availableParallelism() : Number(options.coresPerPilot);
  if (!Number.isInteger(cores) || cores < 1 || cores > 1024) {
    throw new PilothouseError('CONFIG_INVALID', '--cores-per-pilot must be an integer from 1 to 1024', {
      field: 'coresPerPilot',
    });
  }
  const matcher = await startMatcher(compileMatcherConfig({ dataDir: options.dataDir, listen: options.listen }), {
    logger,
  });
  const config = await writeLocalSiteConfig({
    dataDir: path.resolve(options.dataDir),
    pilots: count,
    coresPerPilot: cores,
    schedule,
    idleTimeoutSec: 120,
    pilotArgs: await localPilotIsolation(),
  });
  const director = startDirectorService({
    config,
    matcherUrls: [matcher.url],
    tokenFile: matcher.adminTokenPath,
    logger,
  });
  const adminToken = (await readFile(matcher.adminTokenPath, 'utf8')).trim();
  return { matcher, director, adminToken };
}

async function bringDown(matcher: RunningMatcher, director: RunningDirector): Promise<void> {
  // Local pilots drain (SIGTERM) and say bye while the matcher still listens.
  await director.stop({ cancelLocalPilots: true });
  await matcher.stop();
}

export function upCommand(): Command {
  return new Command('up')
    .description('run the matcher and a site director with local pilots on this machine, until Ctrl-C')
    .option('--data-dir <dir>', 'data directory', '.pilothouse')
    .option('--listen <host:port>', 'matcher address', '127.0.0.1:8080')
    .option('--pilots <n>', 'local pilots at once, at most (started by the site director when jobs wait)', '2')
    .option('--cores-per-pilot <n>', 'cores each pilot offers (default: all of this machine)')
    .option('--log-level <level>', 'pino log level', 'warn')
    .action(async (options: UpOptions) => {
      const logger = createLogger({ component: 'up', level: options.logLevel });
      const { matcher, director } = await bringUp(options, logger, UP_SCHEDULE);
      process.stdout.write(
        [
          `Pilothouse is up: matcher ${matcher.url}; a site director sends up to ${options.pilots} local pilot(s) to site ${LOCAL_SITE} when jobs wait.`,
          `Site director configuration: ${path.join(path.resolve(options.dataDir), 'site-director.json')}`,
          'Submit from another terminal:',
          `  export PILOTHOUSE_MATCHER=${matcher.url} PILOTHOUSE_TOKEN_FILE=${matcher.adminTokenPath}`,
          '  npx pilothouse submit examples/hello.json',
          '  npx pilothouse jobs',
          '  npx pilothouse pilots',
          '  npx pilothouse site-director status',
          'Ctrl-C stops everything.',
          '',
        ].join('\n'),
      );
      await waitForSignal();
      await bringDown(matcher, director);
    });
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('bring up the all-in-one, run the example jobs end to end, show their results, stop')
    .option('--data-dir <dir>', 'data directory (default: a new temporary one)')
    .option('--examples <dir>', 'directory of example job files', 'examples')
    .option('--pilots <n>', 'local pilots', '2')
    .option('--log-level <level>', 'pino log level', 'warn')
    .action(async (options: { dataDir?: string; examples: string; pilots: string; logLevel: string }) => {
      const logger = createLogger({ component: 'demo', level: options.logLevel });
      const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'pilothouse-demo-')));
      const { matcher, director, adminToken } = await bringUp(
        { dataDir, listen: '127.0.0.1:0', pilots: options.pilots, logLevel: options.logLevel, coresPerPilot: '2' },
        logger,
        DEMO_SCHEDULE,
      );
      try {
        const client = new MatcherClient(matcher.url, adminToken);
        const files = (await readdir(options.examples)).filter((f) => f.endsWith('.json')).sort();
        const descriptions: unknown[] = [];
        for (const file of files) {
          const parsed = JSON.parse(await readFile(path.join(options.examples, file), 'utf8')) as unknown;
          descriptions.push(...(Array.isArray(parsed) ? parsed : [parsed]));
        }
        process.stdout.write(
          `matcher ${matcher.url}; a site director with the local backend (up to ${options.pilots} pilots); submitting ${descriptions.length} example jobs from ${options.examples}/\n`,
        );
        const { body } = await client.json<{ jobIds: number[] }>('POST', '/api/jobs', descriptions);
        const jobs = await waitUntilFinal(client, body.jobIds);
        process.stdout.write(
          `\n${table(
            ['id', 'name', 'status', 'minor status', 'exit', 'site'],
            jobs.map((j) => [j.id, j.name, j.status, j.minorStatus, j.exitCode, j.site]),
          )}\n`,
        );
        for (const job of jobs.filter((j) => j.outputSandbox)) {
          const dir = path.join(dataDir, 'outputs', `job-${job.id}`);
          const files = await unpackOutputSandbox(await client.download(`/api/jobs/${job.id}/output`), dir);
          const stdout =
            (await readFile(path.join(dir, 'std.out'), 'utf8').catch(() => '')).trim().split('\n')[0] ?? '';
          process.stdout.write(
            `\njob ${job.id} (${job.name}): ${files.join(', ')}\n  std.out: ${stdout || '(empty)'}\n`,
          );
        }
        const pilots = await client.json<{ pilots: { id: string; status: string; jobsMatched: number }[] }>(
          'GET',
          '/api/pilots?perPage=100',
        );
        process.stdout.write(
          `\npilots sent by the site director:\n${table(
            ['pilot', 'status', 'jobs'],
            pilots.body.pilots.map((p) => [p.id, p.status, p.jobsMatched]),
          )}\n`,
        );
        process.stdout.write(`\noutputs unpacked under ${path.join(dataDir, 'outputs')}\n`);
      } finally {
        await bringDown(matcher, director);
      }
    });
}

async function waitUntilFinal(client: MatcherClient, ids: number[]): Promise<JobView[]> {
  const progress = createProgress('jobs finished', ids.length);
  for (;;) {
    const { body } = await client.json<{ jobs: JobView[] }>('POST', '/api/jobs/search', { ids, perPage: ids.length });
    const done = body.jobs.filter((job) => FINAL_STATUSES.has(job.status)).length;
    progress.update(done);
    if (done === ids.length) {
      progress.finish();
      return body.jobs;
    }
    await delay(250);
  }
}
