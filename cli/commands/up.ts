/**
 * `pilothouse up`: the all-in-one on this machine (matcher + a handful of local pilots), and
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
import { LocalPilotPool } from '../local-pilots.ts';
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

export const LOCAL_SITE = `Local.${os.hostname().split('.')[0] || 'localhost'}`;

async function bringUp(
  options: UpOptions,
  logger: Logger,
): Promise<{ matcher: RunningMatcher; pool: LocalPilotPool; adminToken: string }> {
  const count = Number(options.pilots);
  if (!Number.isInteger(count) || count < 0 || count > 64) {
    throw new PilothouseError('CONFIG_INVALID', '--pilots must be an integer from 0 to 64', { field: 'pilots' });
  }
  const matcher = await startMatcher(compileMatcherConfig({ dataDir: options.dataDir, listen: options.listen }), {
    logger,
  });
  const pilotTokenFile = path.join(path.resolve(options.dataDir), 'local-pilot.token');
  const pilotToken = await matcher.tokens.issue({
    kind: 'pilot',
    subject: 'pilots.local',
    vo: 'local',
    group: 'local_pilot',
    properties: ['GenericPilot'],
    site: LOCAL_SITE,
    ttlSec: 7 * 86_400,
  });
  await writeFile(pilotTokenFile, `${pilotToken}\n`, { mode: 0o600 });
  const pool = new LocalPilotPool({
    matcherUrl: matcher.url,
    tokenFile: pilotTokenFile,
    dataDir: path.resolve(options.dataDir),
    count,
    site: LOCAL_SITE,
    coresPerPilot: options.coresPerPilot === undefined ? undefined : Number(options.coresPerPilot),
    idleTimeoutSec: 3600,
    logger,
  });
  await pool.start();
  const adminToken = (await readFile(matcher.adminTokenPath, 'utf8')).trim();
  return { matcher, pool, adminToken };
}

export function upCommand(): Command {
  return new Command('up')
    .description('run the matcher and a handful of local pilots on this machine, until Ctrl-C')
    .option('--data-dir <dir>', 'data directory', '.pilothouse')
    .option('--listen <host:port>', 'matcher address', '127.0.0.1:8080')
    .option('--pilots <n>', 'local pilots to keep running', '2')
    .option('--cores-per-pilot <n>', 'cores each pilot offers (default: all)')
    .option('--log-level <level>', 'pino log level', 'warn')
    .action(async (options: UpOptions) => {
      const logger = createLogger({ component: 'up', level: options.logLevel });
      const { matcher, pool } = await bringUp(options, logger);
      process.stdout.write(
        [
          `Pilothouse is up: matcher ${matcher.url}, ${options.pilots} local pilot(s) at site ${LOCAL_SITE}.`,
          'Submit from another terminal:',
          `  export PILOTHOUSE_MATCHER=${matcher.url} PILOTHOUSE_TOKEN_FILE=${matcher.adminTokenPath}`,
          '  npx pilothouse submit examples/hello.json',
          '  npx pilothouse jobs',
          'Ctrl-C stops everything.',
          '',
        ].join('\n'),
      );
      await waitForSignal();
      await pool.stop();
      await matcher.stop();
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
      const { matcher, pool, adminToken } = await bringUp(
        { dataDir, listen: '127.0.0.1:0', pilots: options.pilots, logLevel: options.logLevel, coresPerPilot: '2' },
        logger,
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
          `matcher ${matcher.url}; ${options.pilots} pilots; submitting ${descriptions.length} example jobs from ${options.examples}/\n`,
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
        process.stdout.write(`\noutputs unpacked under ${path.join(dataDir, 'outputs')}\n`);
      } finally {
        await pool.stop();
        await matcher.stop();
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
