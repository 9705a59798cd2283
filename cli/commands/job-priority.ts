/**
 * `pilothouse priority P IDS… | --where …`: the user priority (0..10) of jobs, chosen by id or by the
 * filters of `pilothouse jobs`. Owners change their own jobs, job administrators those of their VO;
 * within one owner's task queue the highest priority is matched first.
 */
import { Option, type Command } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import { MatcherClient, type ClientOptions } from '../client.ts';
import { EXIT } from '../exit.ts';
import { printJson } from '../format.ts';
import { parseWhere, WHERE_SYNTAX } from '../search-flags.ts';
import { clientCommand } from './jobs.ts';

interface PriorityOptions extends ClientOptions {
  json?: boolean;
  where?: string[];
}

interface PriorityAnswer {
  changed: number;
  unchanged: number;
  failed: number;
  results: (
    | { jobId: number; ok: true; changed: boolean }
    | { jobId: number; ok: false; error: { code: string; message: string } }
  )[];
}

const repeat = (value: string, previous: string[] = []): string[] => [...previous, value];

function jobIds(raw: string[]): number[] {
  return raw.map((text) => {
    const id = Number(text);
    if (!Number.isInteger(id) || id <= 0) {
      throw new PilothouseError('CONFIG_INVALID', `job id must be a positive integer, not '${text}'`, { field: 'ids' });
    }
    return id;
  });
}

export function priorityCommand(): Command {
  return clientCommand(
    'priority',
    'set the user priority (0..10, higher first within an owner’s task queue) of jobs given by id or by --where filters',
  )
    .argument('<priority>', 'the new priority, 0..10')
    .argument('[ids...]', 'job ids (or use --where)')
    .addOption(
      new Option('--where <filter>', `jobs matching this filter, repeatable: ${WHERE_SYNTAX}`).argParser(repeat),
    )
    .action(async (rawPriority: string, rawIds: string[], options: PriorityOptions) => {
      const priority = Number(rawPriority);
      if (!Number.isInteger(priority) || priority < 0 || priority > 10) {
        throw new PilothouseError(
          'CONFIG_INVALID',
          `priority must be a whole number from 0 to 10, not '${rawPriority}'`,
          {
            field: 'priority',
          },
        );
      }
      const where = options.where ?? [];
      if (rawIds.length > 0 === where.length > 0) {
        throw new PilothouseError('CONFIG_INVALID', 'give job ids or --where filters, not both or neither', {
          field: 'ids',
        });
      }
      const selection = rawIds.length > 0 ? { ids: jobIds(rawIds) } : { search: where.map(parseWhere) };
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<PriorityAnswer>('POST', '/api/jobs/priority', { ...selection, priority });
      if (options.json) printJson(body);
      else {
        for (const result of body.results) {
          if (!result.ok) process.stdout.write(`job ${result.jobId}: ${result.error.message} [${result.error.code}]\n`);
        }
        process.stdout.write(
          `priority ${priority}: ${body.changed} job(s) changed, ${body.unchanged} already so, ${body.failed} refused\n`,
        );
      }
      if (body.failed > 0) process.exitCode = EXIT.failure;
    });
}
