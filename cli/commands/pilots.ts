/**
 * `pilothouse pilots`: `secret` mints a one-time pilot secret (service administrators); `show` prints a
 * pilot's record (node, status, drain, exit, last heartbeat); `logs` prints the log a pilot shipped
 * (`--follow` keeps reading until the pilot ends); `drain` tells a pilot to take no more work and leave
 * once its running jobs end.
 */
import { Command } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import { MatcherClient, type ClientOptions } from '../client.ts';
import { printJson } from '../format.ts';
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

const PINO_LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
/** Fields every pilot line carries; the rest are the line's own context. */
const COMMON_FIELDS = new Set([
  'level',
  'time',
  'msg',
  'component',
  'pilotStamp',
  'site',
  'pilotId',
  'pid',
  'hostname',
]);
const ENDED_STATUSES = new Set(['Done', 'Failed', 'Aborted']);

/** One pino JSON line as `time LEVEL message key=value...` (lines that are not JSON print as they are). */
export function formatPilotLogLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof record !== 'object' || record === null) return line;
  const level =
    typeof record.level === 'number' ? (PINO_LEVELS[record.level] ?? String(record.level)) : String(record.level ?? '');
  const extras = Object.entries(record)
    .filter(([name]) => !COMMON_FIELDS.has(name))
    .map(([name, value]) => `${name}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  return [String(record.time ?? ''), level.padEnd(5), String(record.msg ?? ''), ...extras].join(' ').trimEnd();
}

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
            process.stdout.write(options.json ? `${entry.line}\n` : `${formatPilotLogLine(entry.line)}\n`);
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

export function pilotsCommand(): Command {
  return new Command('pilots')
    .description('pilots: credentials, records, logs, drain')
    .addCommand(secretCommand())
    .addCommand(showCommand())
    .addCommand(logsCommand())
    .addCommand(drainCommand());
}
