/**
 * `pilothouse pilots`: `secret` mints a one-time pilot secret (service administrators); `show` prints a
 * pilot's record (node, status, drain, exit, last heartbeat); `logs` prints the log a pilot shipped
 * (`--follow` keeps reading until the pilot ends); `drain` tells a pilot to take no more work and leave
 * once its running jobs end.
 */
import { Command } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import { formatLogLine } from '../../shared/log-line.ts';
import { MatcherClient, type ClientOptions } from '../client.ts';
import { printJson, table } from '../format.ts';
import { clientCommand } from './jobs.ts';

interface SecretOptions extends ClientOptions {
  vo: string;
  site: string;
  stamp: string;
  ttlSec?: string;
  json?: boolean;
}

function secretCommand(): Command {
  return clientCommand(
    'secret',
    'mint a one-time, expiring secret for one pilot (VO, site, stamp) and print it; the pilot exchanges it with --secret-file',
  )
    .requiredOption('--vo <vo>', 'the VO the pilot serves')
    .requiredOption('--site <site>', 'the site the pilot runs at')
    .requiredOption('--stamp <id>', "the pilot's stamp (the pilot must say hello with it)")
    .option('--ttl-sec <n>', 'how long the secret may wait before it is exchanged (default: the server default)')
    .action(async (options: SecretOptions) => {
      let ttlSec: number | undefined;
      if (options.ttlSec !== undefined) {
        ttlSec = Number(options.ttlSec);
        if (!Number.isInteger(ttlSec) || ttlSec <= 0) {
          throw new PilothouseError('CONFIG_INVALID', '--ttl-sec must be a positive integer', { field: 'ttl-sec' });
        }
      }
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<{ secret: string; expiresAt: string }>('POST', '/api/auth/pilot-secrets', {
        vo: options.vo,
        site: options.site,
        pilotStamp: options.stamp,
        ...(ttlSec !== undefined && { ttlSec }),
      });
      if (options.json) printJson(body);
      else process.stdout.write(`${body.secret}\n`);
    });
}

interface PilotView {
  id: string;
  status: string;
  statusReason: string;
}

interface LogPage {
  pilotId: string;
  status: string;
  lines: { seq: number; line: string; receivedAt: string }[];
  nextAfter: number | null;
  totalLines: number;
  droppedLines: number;
}

const ENDED_STATUSES = new Set(['Done', 'Failed', 'Aborted']);

function pilotPath(id: string): string {
  return `/api/pilots/${encodeURIComponent(id)}`;
}

function positiveInt(value: string | undefined, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new PilothouseError('CONFIG_INVALID', `--${field} must be a whole number`, { field });
  return n;
}

function showCommand(): Command {
  return clientCommand('show', "a pilot's record: where it runs, its node, status, drain, exit and last heartbeat")
    .argument('<pilotId>', 'the pilot id (its stamp)')
    .action(async (pilotId: string, options: ClientOptions & { json?: boolean }) => {
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<Record<string, unknown>>('GET', pilotPath(pilotId));
      printJson(body);
    });
}

function logsCommand(): Command {
  return clientCommand('logs', 'print the log a pilot shipped to the matcher (oldest first)')
    .argument('<pilotId>', 'the pilot id (its stamp)')
    .option('--after <seq>', 'only lines after this sequence number')
    .option('--limit <n>', 'at most this many lines (default: all)')
    .option('--follow', 'keep printing new lines until the pilot ends')
    .option('--poll-ms <ms>', 'with --follow: how often to ask', '2000')
    .action(
      async (
        pilotId: string,
        options: ClientOptions & { json?: boolean; after?: string; limit?: string; follow?: boolean; pollMs?: string },
      ) => {
        const client = await MatcherClient.fromOptions(options);
        let after = positiveInt(options.after, 'after', 0);
        let left = options.limit === undefined ? Number.POSITIVE_INFINITY : positiveInt(options.limit, 'limit', 0);
        const pollMs = Math.max(200, positiveInt(options.pollMs, 'poll-ms', 2000));
        for (;;) {
          const pageSize = Math.min(1000, left);
          if (pageSize <= 0) return;
          const { body } = await client.json<LogPage>(
            'GET',
            `${pilotPath(pilotId)}/logs?after=${after}&limit=${pageSize}`,
          );
          for (const entry of body.lines) {
            process.stdout.write(options.json ? `${entry.line}\n` : `${formatLogLine(entry.line)}\n`);
          }
          left -= body.lines.length;
          if (body.nextAfter !== null) after = body.nextAfter;
          if (body.lines.length === pageSize) continue; // more may be stored already
          if (!options.follow || ENDED_STATUSES.has(body.status)) return;
          await new Promise((resolve) => setTimeout(resolve, pollMs));
        }
      },
    );
}

function drainCommand(): Command {
  return clientCommand('drain', 'tell a pilot to take no more work and exit once its running jobs end')
    .argument('<pilotId>', 'the pilot id (its stamp)')
    .option('--reason <text>', 'why (kept with the pilot and in its log)')
    .action(async (pilotId: string, options: ClientOptions & { json?: boolean; reason?: string }) => {
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<PilotView & { draining: boolean; delivered: boolean }>(
        'POST',
        `${pilotPath(pilotId)}/drain`,
        options.reason === undefined ? {} : { reason: options.reason },
      );
      if (options.json) {
        printJson(body);
        return;
      }
      if (!body.draining) process.stdout.write(`pilot ${pilotId} has already ended (${body.status})\n`);
      else if (body.delivered) process.stdout.write(`pilot ${pilotId} is draining\n`);
      else process.stdout.write(`pilot ${pilotId} will drain when it reconnects\n`);
    });
}

interface PilotListOptions extends ClientOptions {
  json?: boolean;
  vo?: string;
  site?: string;
  ce?: string;
  queue?: string;
  status?: string;
  director?: string;
  since?: string;
  until?: string;
  page: string;
  perPage: string;
}

interface ListedPilot {
  id: string;
  vo: string;
  site: string;
  ce: string | null;
  queue: string | null;
  status: string;
  statusReason: string;
  createdAt: string;
  jobsMatched: number;
  backend: string | null;
  backendRef: string | null;
  connected: boolean;
}

function listCommand(): Command {
  return clientCommand('list', 'pilots, newest first, with where they run and their status (filters are comma lists)')
    .option('--vo <vos>', 'only these VOs')
    .option('--site <sites>', 'only these sites')
    .option('--ce <ces>', 'only these CEs')
    .option('--queue <queues>', 'only these queues')
    .option(
      '--status <statuses>',
      'only these statuses (Submitted, Waiting, Running, Done, Failed, Aborted, Unknown, Lost)',
    )
    .option('--director <names>', 'only pilots of these site directors')
    .option('--since <iso>', 'made at or after this time (ISO 8601)')
    .option('--until <iso>', 'made before this time (ISO 8601)')
    .option('--page <n>', 'page number, from 1', '1')
    .option('--per-page <n>', 'pilots per page (at most 1000)', '50')
    .action(async (options: PilotListOptions) => {
      const client = await MatcherClient.fromOptions(options);
      const query = new URLSearchParams({ page: options.page, perPage: options.perPage });
      for (const name of ['vo', 'site', 'ce', 'queue', 'status', 'director', 'since', 'until'] as const) {
        const value = options[name];
        if (value !== undefined) query.set(name, value);
      }
      const { body } = await client.json<{ total: number; pilots: ListedPilot[] }>('GET', `/api/pilots?${query}`);
      if (options.json) {
        printJson(body);
        return;
      }
      process.stdout.write(
        `${table(
          ['pilot', 'vo', 'where', 'status', 'jobs', 'backend', 'created', 'reason'],
          body.pilots.map((p) => [
            p.id,
            p.vo,
            [p.site, p.ce, p.queue].filter((part) => part !== null).join('/'),
            p.connected ? `${p.status}*` : p.status,
            p.jobsMatched,
            p.backend ? `${p.backend}:${p.backendRef ?? '?'}` : 'by hand',
            p.createdAt,
            p.statusReason,
          ]),
        )}\n${body.pilots.length} of ${body.total} pilot(s) (* connected now)\n`,
      );
    });
}

function outputCommand(): Command {
  return clientCommand('output', "the pilot wrapper's stdout and stderr, as its site director fetched them from the CE")
    .argument('<pilotId>', 'the pilot id (its stamp)')
    .option('--stderr', 'only stderr')
    .option('--stdout', 'only stdout')
    .action(
      async (pilotId: string, options: ClientOptions & { json?: boolean; stderr?: boolean; stdout?: boolean }) => {
        const client = await MatcherClient.fromOptions(options);
        const { body } = await client.json<{ stdout: string; stderr: string; truncated: boolean; fetchedAt: string }>(
          'GET',
          `${pilotPath(pilotId)}/output`,
        );
        if (options.json) {
          printJson(body);
          return;
        }
        const both = !options.stdout && !options.stderr;
        if (both || options.stdout)
          process.stdout.write(
            both ? `--- stdout${body.truncated ? ' (end only)' : ''}\n${body.stdout}\n` : body.stdout,
          );
        if (both || options.stderr) process.stdout.write(both ? `--- stderr\n${body.stderr}\n` : body.stderr);
      },
    );
}

export function pilotsCommand(): Command {
  return new Command('pilots')
    .description('pilots: list, records, output, logs, drain, credentials')
    .addCommand(listCommand(), { isDefault: true })
    .addCommand(outputCommand())
    .addCommand(secretCommand())
    .addCommand(showCommand())
    .addCommand(logsCommand())
    .addCommand(drainCommand());
}
