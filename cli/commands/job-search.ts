/** `pilothouse jobs`: search jobs with filters, sort and paging, or count them with --summary. */
import { Option, type Command } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import { MatcherClient } from '../client.ts';
import { printJson, table } from '../format.ts';
import { parseSort, parseWhere, WHERE_SYNTAX, type SearchFilter } from '../search-flags.ts';
import { clientCommand } from './jobs.ts';

const collect = (value: string, previous: string[] = []): string[] => [...previous, ...value.split(',')];
const repeat = (value: string, previous: string[] = []): string[] => [...previous, value];

const DEFAULT_COLUMNS = 'id,status,minorStatus,exitCode,site,owner,name';
/** Pages of this many jobs when --all walks a whole search. */
const ALL_PAGE_SIZE = 1000;

interface JobsOptions {
  matcher?: string;
  tokenFile?: string;
  caFile?: string;
  json?: boolean;
  status?: string[];
  owner?: string[];
  group?: string[];
  site?: string[];
  jobType?: string[];
  jobGroup?: string[];
  name?: string;
  since?: string;
  where?: string[];
  sort: string;
  columns: string;
  page: string;
  perPage: string;
  all: boolean;
  summary: boolean;
  by: string;
}

interface SearchAnswer {
  total: number;
  jobs: Record<string, unknown>[];
  nextCursor?: string;
}

function positiveNumber(value: string, flag: string, whole = true): number {
  const n = Number(value);
  if (!(n > 0) || (whole && !Number.isInteger(n))) {
    throw new PilothouseError('CONFIG_INVALID', `--${flag} must be a positive ${whole ? 'integer' : 'number'}`, {
      field: flag,
    });
  }
  return n;
}

/** The flags as the `search` list of the matcher's search and summary bodies. */
function filtersOf(options: JobsOptions): SearchFilter[] {
  const filters: SearchFilter[] = [];
  const lists: [keyof JobsOptions, string][] = [
    ['status', 'status'],
    ['owner', 'owner'],
    ['group', 'group'],
    ['site', 'site'],
    ['jobType', 'jobType'],
    ['jobGroup', 'jobGroup'],
  ];
  for (const [flag, parameter] of lists) {
    const values = options[flag] as string[] | undefined;
    if (values) filters.push({ parameter, operator: 'in', values });
  }
  if (options.name) filters.push({ parameter: 'name', operator: 'like', value: options.name });
  if (options.since) {
    filters.push({
      parameter: 'submittedAt',
      operator: 'last hours',
      value: positiveNumber(options.since, 'since', false),
    });
  }
  for (const expression of options.where ?? []) filters.push(parseWhere(expression));
  return filters;
}

export function jobsCommand(): Command {
  return clientCommand('jobs', 'search jobs (your own unless you administer jobs), or count them with --summary')
    .addOption(
      new Option('--status <status>', 'jobs in these statuses (repeatable, or comma-separated)').argParser(collect),
    )
    .addOption(new Option('--owner <owner>', 'jobs of these owners').argParser(collect))
    .addOption(new Option('--group <group>', 'jobs of these groups').argParser(collect))
    .addOption(new Option('--site <site>', 'jobs at these sites').argParser(collect))
    .addOption(new Option('--job-type <type>', 'jobs of these job types').argParser(collect))
    .addOption(new Option('--job-group <group>', 'jobs of these job groups (JDL JobGroup)').argParser(collect))
    .option('--name <pattern>', 'job names like this pattern (% any text, _ one character; case-insensitive)')
    .option('--since <hours>', 'jobs submitted in the last HOURS hours (a number, e.g. 24 or 0.5)')
    .addOption(new Option('--where <expression>', `any column: ${WHERE_SYNTAX} (repeatable)`).argParser(repeat))
    .option('--sort <keys>', 'sort keys COLUMN[:asc|desc], comma-separated', 'id:desc')
    .option(
      '--columns <columns>',
      'columns to print (any search column; --json prints whole jobs unless given)',
      DEFAULT_COLUMNS,
    )
    .option('--page <n>', 'page number', '1')
    .option('--per-page <n>', 'jobs per page (at most 10000)', '50')
    .option(
      '--all',
      'every job found, read page by page with a cursor (pages of 1000 unless --per-page; ignores --page)',
      false,
    )
    .option('--summary', 'print counts instead of jobs, grouped by --by', false)
    .option('--by <columns>', 'with --summary: up to four columns to group by, comma-separated', 'status')
    .addHelpText(
      'after',
      `\nExamples:\n  pilothouse jobs --status Running,Stalled --site LCG.CERN.ch\n  pilothouse jobs --where 'priority>=3' --where 'name~sim%' --sort submittedAt:desc\n  pilothouse jobs --since 24 --summary --by status,site\n  pilothouse jobs --job-group campaign7 --all --json\n`,
    )
    .action(async (options: JobsOptions, command: Command) => {
      const client = await MatcherClient.fromOptions(options);
      const search = filtersOf(options);
      if (options.summary) {
        const grouping = options.by.split(',').map((column) => column.trim());
        const { body } = await client.json<{ grouping: string[]; groups: Record<string, unknown>[]; total: number }>(
          'POST',
          '/api/jobs/summary',
          { grouping, ...(search.length > 0 && { search }) },
        );
        if (options.json) return printJson(body);
        const rows = body.groups.map((group) => [
          ...body.grouping.map((c) => group[c] as string | null),
          group['count'] as number,
        ]);
        process.stdout.write(`${table([...body.grouping, 'count'], rows)}\n${body.total} job(s)\n`);
        return;
      }
      const columnsGiven = command.getOptionValueSource('columns') === 'cli';
      const columns = options.columns.split(',').map((column) => column.trim());
      const perPageGiven = command.getOptionValueSource('perPage') === 'cli';
      const perPage = options.all && !perPageGiven ? ALL_PAGE_SIZE : positiveNumber(options.perPage, 'per-page');
      const body = {
        ...(search.length > 0 && { search }),
        sort: parseSort(options.sort),
        perPage,
        ...((columnsGiven || !options.json) && { parameters: columns }),
      };
      const jobs: Record<string, unknown>[] = [];
      let answer = (
        await client.json<SearchAnswer>('POST', '/api/jobs/search', {
          ...body,
          ...(!options.all && { page: positiveNumber(options.page, 'page') }),
        })
      ).body;
      jobs.push(...answer.jobs);
      while (options.all && answer.nextCursor) {
        answer = (await client.json<SearchAnswer>('POST', '/api/jobs/search', { ...body, cursor: answer.nextCursor }))
          .body;
        jobs.push(...answer.jobs);
        if (!options.json) process.stderr.write(`\r${jobs.length} of ${answer.total} job(s) read`);
      }
      if (options.all && !options.json && answer.total > perPage) process.stderr.write('\n');
      if (options.json) {
        printJson(options.all ? jobs : { ...answer, jobs });
        return;
      }
      process.stdout.write(
        `${table(
          columns,
          jobs.map((job) => columns.map((c) => job[c] as string | null)),
        )}\n`,
      );
      const page = options.all ? '' : `, page ${options.page}`;
      process.stdout.write(`${jobs.length} of ${answer.total} job(s)${page}\n`);
    });
}
