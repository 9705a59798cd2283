/**
 * `pilothouse logs ID [--follow]`: a job's status history and the last output of its payload (the
 * std.out and std.err tails its pilot sends with heartbeats and with the report that it ended).
 * With --follow, new status changes and new output are printed as they come, until the job is final.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import { FINAL_STATUSES, type JobStatus } from '../../shared/job/status.ts';
import type { JobHistoryEntry } from '../../shared/job/model.ts';
import { MatcherClient, type ClientOptions } from '../client.ts';
import { printJson, table } from '../format.ts';
import { clientCommand } from './jobs.ts';

interface JobLogs {
  jobId: number;
  status: JobStatus;
  minorStatus: string;
  attempt: number;
  history: JobHistoryEntry[];
  outputTail: { attempt: number; stdout: string; stderr: string; updatedAt: string } | null;
}

const historyRows = (entries: JobHistoryEntry[]) =>
  entries.map((h) => [
    h.at,
    h.attempt,
    h.applied ? h.status : `(${h.status})`,
    h.minorStatus,
    h.applicationStatus,
    h.source,
  ]);
const HISTORY_HEADERS = ['time', 'attempt', 'status', 'minor status', 'application status', 'source'];

/**
 * What `next` adds after `previous`: the text past their overlap (the longest end of `previous` that
 * starts `next`), or all of `next` when they share nothing (the tail moved on by more than its size).
 */
export function newOutput(previous: string, next: string): { text: string; gap: boolean } {
  if (next.startsWith(previous)) return { text: next.slice(previous.length), gap: false };
  for (let start = 1; start < previous.length; start += 1) {
    if (next.startsWith(previous.slice(start))) return { text: next.slice(previous.length - start), gap: false };
  }
  return { text: next, gap: previous !== '' };
}

function printStreams(tail: NonNullable<JobLogs['outputTail']>): void {
  for (const [name, text] of [
    ['std.out', tail.stdout],
    ['std.err', tail.stderr],
  ] as const) {
    if (text === '') continue;
    process.stdout.write(
      `\n== ${name} (last ${Buffer.byteLength(text)} bytes, attempt ${tail.attempt}, ${tail.updatedAt}) ==\n`,
    );
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }
}

export function logsCommand(): Command {
  return clientCommand('logs', "show a job's status history and the last lines its payload wrote (std.out, std.err)")
    .argument('<id>', 'job id')
    .option('--follow', 'keep printing new status changes and output until the job ends', false)
    .option('--interval-sec <seconds>', 'with --follow: how often to ask the matcher', '2')
    .action(async (id: string, options: ClientOptions & { json?: boolean; follow: boolean; intervalSec: string }) => {
      const intervalSec = Number(options.intervalSec);
      if (!(intervalSec >= 0.1)) {
        throw new PilothouseError('CONFIG_INVALID', '--interval-sec must be a number of seconds, at least 0.1', {
          field: 'interval-sec',
        });
      }
      const client = await MatcherClient.fromOptions(options);
      const read = async () => (await client.json<JobLogs>('GET', `/api/jobs/${encodeURIComponent(id)}/logs`)).body;
      let logs = await read();
      if (options.json && !options.follow) return printJson(logs);
      if (options.json) {
        // One JSON document per change, a line each, for scripts that follow.
        process.stdout.write(`${JSON.stringify(logs)}\n`);
      } else {
        process.stdout.write(`job ${logs.jobId}: ${logs.status} (${logs.minorStatus})\n\n`);
        process.stdout.write(`${table(HISTORY_HEADERS, historyRows(logs.history))}\n`);
        if (logs.outputTail) printStreams(logs.outputTail);
        else process.stdout.write('\n(no output received yet)\n');
      }
      let printed = logs;
      while (options.follow && !FINAL_STATUSES.has(logs.status)) {
        await sleep(intervalSec * 1000);
        logs = await read();
        if (options.json) {
          if (JSON.stringify(logs) !== JSON.stringify(printed)) process.stdout.write(`${JSON.stringify(logs)}\n`);
          printed = logs;
          continue;
        }
        for (const entry of logs.history.slice(printed.history.length)) {
          process.stdout.write(`${historyRows([entry])[0]!.join('  ')}\n`);
        }
        const before = printed.outputTail;
        const after = logs.outputTail;
        if (after && (before?.attempt !== after.attempt || before.updatedAt !== after.updatedAt)) {
          for (const stream of ['stdout', 'stderr'] as const) {
            const sameAttempt = before?.attempt === after.attempt;
            const { text, gap } = newOutput(sameAttempt ? before[stream] : '', after[stream]);
            if (text === '') continue;
            if (gap) process.stdout.write(`[${stream}: some output was skipped]\n`);
            // std.out as it is; std.err lines marked, so the two can be told apart.
            const lines = (text.endsWith('\n') ? text.slice(0, -1) : text).split('\n');
            const prefix = stream === 'stderr' ? '[std.err] ' : '';
            process.stdout.write(`${lines.map((line) => prefix + line).join('\n')}\n`);
          }
        }
        printed = logs;
      }
    });
}
