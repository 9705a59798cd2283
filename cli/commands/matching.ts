/** Client commands about matching: explain, the site mask (sites). */
import { Command, Option } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import { MatcherClient } from '../client.ts';
import { printJson, table } from '../format.ts';
import { clientCommand } from './jobs.ts';

interface ExplainOptions {
  matcher?: string;
  tokenFile?: string;
  json?: boolean;
  site?: string;
  ce?: string;
  queue?: string;
  cores?: string;
  memoryMb?: string;
  wallTimeSec?: string;
  tags?: string;
  requiredTags?: string;
  platform?: string;
  diskMb?: string;
  cpuPower?: string;
}

const int = (value: string | undefined, flag: string): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new PilothouseError('CONFIG_INVALID', `--${flag} must be a whole number`, { field: flag });
  return n;
};
const list = (value: string | undefined): string[] => (value ? value.split(',').filter(Boolean) : []);

export function explainCommand(): Command {
  return clientCommand(
    'explain',
    'why a job does or does not match: against the pilots waiting now, or a queue you describe',
  )
    .argument('<id>', 'job id')
    .option('--site <site>', 'describe a queue/offer at this site (otherwise: the parked offers of connected pilots)')
    .option('--ce <ce>', 'its computing element')
    .option('--queue <queue>', 'its batch queue')
    .option('--cores <n>', 'cores it offers', '1')
    .option('--memory-mb <n>', 'memory it offers, MB', '2048')
    .option('--wall-time-sec <n>', 'time it offers (default: unlimited)')
    .option('--tags <a,b>', 'tags it offers')
    .option('--required-tags <a,b>', 'tags it requires of jobs')
    .option('--platform <p>', 'its platform, e.g. x86_64-v3')
    .option('--disk-mb <n>', 'scratch disk it offers, MB')
    .option('--cpu-power <x>', 'CPU power of one core')
    .action(async (id: string, options: ExplainOptions) => {
      const client = await MatcherClient.fromOptions(options);
      const body =
        options.site === undefined
          ? {}
          : {
              targets: [
                {
                  site: options.site,
                  ce: options.ce ?? null,
                  queue: options.queue ?? null,
                  resources: {
                    cores: int(options.cores, 'cores') ?? 1,
                    memoryMB: int(options.memoryMb, 'memory-mb') ?? 2048,
                    wallTimeSec: int(options.wallTimeSec, 'wall-time-sec') ?? null,
                    tags: list(options.tags),
                    requiredTags: list(options.requiredTags),
                    ...(options.platform && { platform: options.platform }),
                    ...(options.diskMb && { diskMB: int(options.diskMb, 'disk-mb') }),
                    ...(options.cpuPower && { cpuPower: Number(options.cpuPower) }),
                  },
                },
              ],
            };
      const { body: answer } = await client.json<{
        jobId: number;
        status: string;
        note?: string;
        verdicts: {
          target: { kind: string; pilotId?: string; site: string; ce: string | null };
          matches: boolean;
          checks: { requirement: string; pass: boolean; reason: string }[];
        }[];
      }>('POST', `/api/jobs/${encodeURIComponent(id)}/explain`, body);
      if (options.json) {
        printJson(answer);
        return;
      }
      process.stdout.write(`job ${answer.jobId} (${answer.status})${answer.note ? `: ${answer.note}` : ''}\n`);
      for (const verdict of answer.verdicts) {
        const where = `${verdict.target.pilotId ? `pilot ${verdict.target.pilotId} at ` : ''}${verdict.target.site}${verdict.target.ce ? ` / ${verdict.target.ce}` : ''}`;
        process.stdout.write(`\n${verdict.matches ? 'MATCHES' : 'does not match'}: ${where}\n`);
        process.stdout.write(
          `${table(
            ['', 'requirement', 'reason'],
            verdict.checks.map((c) => [c.pass ? 'ok' : 'FAIL', c.requirement, c.reason]),
          )}\n`,
        );
      }
    });
}

export function sitesCommand(): Command {
  const list = clientCommand('list', 'the site mask').action(
    async (options: { matcher?: string; tokenFile?: string; json?: boolean }) => {
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<{
        sites: { site: string; status: string; reason: string; changedBy: string; changedAt: string }[];
      }>('GET', '/api/sites');
      if (options.json) printJson(body);
      else
        process.stdout.write(
          `${table(
            ['site', 'status', 'reason', 'by', 'at'],
            body.sites.map((s) => [s.site, s.status, s.reason, s.changedBy, s.changedAt]),
          )}\n`,
        );
    },
  );
  const change = (name: 'ban' | 'allow', description: string): Command =>
    clientCommand(name, description)
      .argument('<site>', 'site name')
      .addOption(new Option('--reason <text>', 'why (kept in the mask history)').makeOptionMandatory())
      .action(
        async (site: string, options: { matcher?: string; tokenFile?: string; json?: boolean; reason: string }) => {
          const client = await MatcherClient.fromOptions(options);
          const { body } = await client.json<{ site: string; status: string }>(
            'POST',
            `/api/sites/${encodeURIComponent(site)}/${name}`,
            { reason: options.reason },
          );
          if (options.json) printJson(body);
          else process.stdout.write(`${body.site} is now ${body.status}\n`);
        },
      );
  return new Command('sites')
    .description('the site mask: a banned site receives only Test jobs')
    .addCommand(list)
    .addCommand(change('ban', 'ban a site (service administrators)'))
    .addCommand(change('allow', 'allow a banned site again (service administrators)'));
}
