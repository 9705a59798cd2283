/**
 * `pilothouse site-director --config FILE --matcher URL --token-file F [--once]`: the service that
 * sends pilots to the configured CEs (site-director/), and `pilothouse site-director status`: what
 * each director's last cycle decided per queue, and why, as the director reported it to the matcher.
 */
import { Command } from 'commander';
import { parseMatcherUrls } from '../../shared/endpoints.ts';
import { PilothouseError } from '../../shared/errors.ts';
import { createLogger } from '../../shared/logger.ts';
import type { DirectorReport } from '../../shared/protocol/site-director.ts';
import { loadDirectorConfig } from '../../site-director/config/load.ts';
import { runOnce, startDirectorService } from '../../site-director/service.ts';
import { MatcherClient, readCaFile, type ClientOptions } from '../client.ts';
import { printJson, table } from '../format.ts';
import { clientCommand } from './jobs.ts';
import { waitForSignal } from './server.ts';

interface RunOptions {
  config?: string;
  matcher?: string;
  tokenFile?: string;
  caFile?: string;
  once?: boolean;
  json?: boolean;
  logLevel: string;
}

export function siteDirectorCommand(): Command {
  const command = new Command('site-director')
    // `site-director status --matcher URL`: the option belongs to status, not to the service.
    .enablePositionalOptions()
    .description('send pilots to the configured computing elements, as long as their queues have work (Ctrl-C stops)')
    .option('--config <file>', 'sites, CEs and queues (YAML or JSON; see docs/site-director.md)')
    .option(
      '--matcher <urls>',
      'matcher base URL, or several comma-separated, tried in turn (env PILOTHOUSE_MATCHER; default http://127.0.0.1:8080)',
    )
    .option('--token-file <file>', 'a service-administrator token (env PILOTHOUSE_TOKEN_FILE); re-read when it changes')
    .option('--ca-file <file>', 'CA bundle (PEM) that verifies an https matcher (env PILOTHOUSE_CA_FILE)')
    .option('--once', 'run one cycle, print its report and exit')
    .option('--json', 'with --once: print the report as JSON', false)
    .option('--log-level <level>', 'pino log level', 'info')
    .action(async (options: RunOptions) => {
      const env = process.env;
      const configFile = options.config;
      if (configFile === undefined) {
        throw new PilothouseError('CONFIG_INVALID', '--config FILE is required', { field: 'config' });
      }
      const config = loadDirectorConfig(configFile);
      const matcherUrls = parseMatcherUrls(options.matcher ?? env.PILOTHOUSE_MATCHER ?? 'http://127.0.0.1:8080');
      const tokenFile = options.tokenFile ?? env.PILOTHOUSE_TOKEN_FILE;
      if (!tokenFile) {
        throw new PilothouseError('CONFIG_INVALID', '--token-file is required (a service-administrator token)', {
          field: 'tokenFile',
        });
      }
      const logger = createLogger({ component: 'site-director', level: options.logLevel });
      const service = {
        config,
        matcherUrls,
        tokenFile,
        caPem: await readCaFile(options.caFile ?? env.PILOTHOUSE_CA_FILE),
        logger,
      };
      if (options.once) {
        const report = await runOnce(service);
        if (options.json) printJson(report);
        else process.stdout.write(`${formatReport(report)}\n`);
        process.exitCode = report.matcherReachable ? 0 : 5;
        return;
      }
      const running = startDirectorService(service);
      process.stderr.write(`site director ${config.name}: ${config.ces.length} CE(s), schedule '${config.schedule}'\n`);
      await waitForSignal();
      await running.stop();
    });
  command.addCommand(statusCommand());
  return command;
}

function statusCommand(): Command {
  return clientCommand(
    'status',
    "each site director's last cycle: per queue the demand, pilots, caps, throttles and what it submitted",
  )
    .option('--name <director>', 'only this director')
    .action(async (options: ClientOptions & { json?: boolean; name?: string }) => {
      const client = await MatcherClient.fromOptions(options);
      const reports =
        options.name === undefined
          ? (
              await client.json<{ directors: { report: DirectorReport; receivedAt: string }[] }>(
                'GET',
                '/api/site-directors',
              )
            ).body.directors
          : [
              (
                await client.json<{ report: DirectorReport; receivedAt: string }>(
                  'GET',
                  `/api/site-directors/${encodeURIComponent(options.name)}`,
                )
              ).body,
            ];
      if (options.json) {
        printJson(options.name === undefined ? { directors: reports } : reports[0]);
        return;
      }
      if (reports.length === 0) process.stdout.write('no site director has reported yet\n');
      for (const { report, receivedAt } of reports) process.stdout.write(`${formatReport(report, receivedAt)}\n\n`);
    });
}

export function formatReport(report: DirectorReport, receivedAt?: string): string {
  const head =
    `site director ${report.director}: cycle ${report.cycle} at ${report.startedAt} (${Math.round(report.durationMs)} ms)` +
    `${receivedAt ? `, reported ${receivedAt}` : ''}${report.matcherReachable ? '' : ' — PAUSED: matcher unreachable'}\n` +
    `pilots followed ${report.pilotsTracked}, status updates ${report.statusUpdates}, outputs fetched ${report.outputsFetched}`;
  const queues = table(
    ['queue', 'vo', 'jobs', 'needed', 'waiting', 'running', 'caps w/r/c', 'submitted', 'why'],
    report.queues.map((q) => [
      `${q.site}/${q.ce}/${q.queue}`,
      q.vo,
      q.waitingJobs,
      q.pilotsNeeded,
      q.pilots ? q.pilots.waiting + q.pilots.unknown : null,
      q.pilots?.running,
      `${q.caps.maxWaitingPilots}/${q.caps.maxRunningPilots}/${q.caps.maxPilotsPerCycle}`,
      q.failed > 0 ? `${q.submitted} (+${q.failed} failed)` : q.submitted,
      q.reason,
    ]),
  );
  const troubled = report.ces.filter(
    (ce) => ce.consecutiveErrors > 0 || ce.backedOffUntil || ce.throttledUntil || ce.missedPilotsInWindow > 0,
  );
  const ces =
    troubled.length === 0
      ? 'every CE healthy'
      : table(
          ['ce', 'backend', 'errors', 'backed off until', 'missed', 'throttled until', 'last error'],
          troubled.map((ce) => [
            `${ce.site}/${ce.ce}`,
            ce.backend,
            ce.consecutiveErrors,
            ce.backedOffUntil,
            ce.missedPilotsInWindow,
            ce.throttledUntil,
            ce.lastError,
          ]),
        );
  return `${head}\n\n${queues}\n\n${ces}`;
}
