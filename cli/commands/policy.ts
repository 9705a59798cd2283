/**
 * `pilothouse policy`: the scheduling policy the matcher applies now. `show` prints it with its
 * version; `set FILE` replaces it (the document of `server --policy FILE`), with `--if-version N` only
 * if nobody changed it since version N; `share`, `rank`, `limit` and `delay` change one entry;
 * `history` lists the versions with what each changed. Reading takes a job administrator, changing a
 * service administrator.
 */
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import { MatcherClient, type ClientOptions } from '../client.ts';
import { printJson, table } from '../format.ts';
import { clientCommand } from './jobs.ts';

interface CommonOptions extends ClientOptions {
  json?: boolean;
}

interface PolicyAnswer {
  version: number;
  updatedAt: string;
  updatedBy: string;
  appliedVersion: number;
  policy: Record<string, unknown>;
}

interface HistoryAnswer {
  versions: {
    version: number;
    updatedAt: string;
    updatedBy: string;
    changes: { setting: string; before: unknown; after: unknown }[];
  }[];
}

function number(raw: string, what: string, check: (n: number) => boolean, rule: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !check(n)) {
    throw new PilothouseError('CONFIG_INVALID', `${what} must be ${rule}, not '${raw}'`, { field: what });
  }
  return n;
}

const show = (value: unknown): string => (value === null ? '(none)' : JSON.stringify(value));

function printVersion(answer: PolicyAnswer, json: boolean | undefined, verb: string): void {
  if (json) printJson(answer);
  else
    process.stdout.write(
      `scheduling policy version ${answer.version} ${verb} by ${answer.updatedBy} at ${answer.updatedAt} (this matcher applies version ${answer.appliedVersion})\n`,
    );
}

async function readPolicyFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text =
      file === '-'
        ? await new Response(process.stdin as unknown as ReadableStream).text()
        : await readFile(file, 'utf8');
  } catch (error) {
    throw new PilothouseError('CONFIG_INVALID', `cannot read ${file}: ${(error as Error).message}`, { field: 'file' });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new PilothouseError('CONFIG_INVALID', `${file} is not valid JSON: ${(error as Error).message}`, {
      field: 'file',
    });
  }
}

function showCommand(): Command {
  return clientCommand('show', 'the scheduling policy in force: its version, who changed it last, the document').action(
    async (options: CommonOptions) => {
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<PolicyAnswer>('GET', '/api/policy');
      if (options.json) {
        printJson(body);
        return;
      }
      printVersion(body, false, 'set');
      process.stdout.write(`${JSON.stringify(body.policy, null, 2)}\n`);
    },
  );
}

function setCommand(): Command {
  return clientCommand(
    'set',
    'replace the scheduling policy with a JSON document (groups, jobTypeRanks, runningLimits, matchingDelays); applied from the next match',
  )
    .argument('<file>', 'the policy document (- reads stdin)')
    .option('--if-version <n>', 'only if the policy is still at this version (else POLICY_CONFLICT, nothing changes)')
    .action(async (file: string, options: CommonOptions & { ifVersion?: string }) => {
      const expected =
        options.ifVersion === undefined
          ? undefined
          : number(options.ifVersion, 'if-version', (n) => Number.isInteger(n) && n >= 0, 'a whole number');
      const document = await readPolicyFile(file);
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<PolicyAnswer>(
        'PUT',
        '/api/policy',
        document,
        expected === undefined ? {} : { 'if-match': `"${expected}"` },
      );
      printVersion(body, options.json, 'stored');
    });
}

function historyCommand(): Command {
  return clientCommand('history', 'the versions of the scheduling policy, newest first, with what each changed')
    .option('--limit <n>', 'at most this many versions (1..500)', '20')
    .action(async (options: CommonOptions & { limit: string }) => {
      const limit = number(options.limit, 'limit', (n) => Number.isInteger(n) && n >= 1 && n <= 500, '1..500');
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<HistoryAnswer>('GET', `/api/policy/history?limit=${limit}`);
      if (options.json) {
        printJson(body);
        return;
      }
      const rows = body.versions.flatMap((version) =>
        (version.changes.length > 0 ? version.changes : [{ setting: '(no change)', before: null, after: null }]).map(
          (change) => [
            version.version,
            version.updatedAt,
            version.updatedBy,
            change.setting,
            show(change.before),
            show(change.after),
          ],
        ),
      );
      process.stdout.write(`${table(['version', 'at', 'by', 'setting', 'before', 'after'], rows)}\n`);
    });
}

/** One entry of the policy, set to a value or (with --remove) removed, on top of the latest version. */
function entryCommand(
  name: string,
  description: string,
  keys: [name: string, description: string][],
  value: { name: string; field: string; parse: (raw: string) => number },
  path: (keys: string[]) => string,
): Command {
  let command = clientCommand(name, description);
  for (const [key, about] of keys) command = command.argument(`<${key}>`, about);
  return command
    .argument(`[${value.name}]`, `the new ${value.name} (not with --remove)`)
    .option('--remove', 'remove the entry instead', false)
    .action(async (...args: unknown[]) => {
      const given = args.slice(0, keys.length + 1) as (string | undefined)[];
      const options = args[keys.length + 1] as CommonOptions & { remove: boolean };
      const raw = given[keys.length];
      if ((raw === undefined) !== options.remove) {
        throw new PilothouseError('CONFIG_INVALID', `give the ${value.name} or --remove, not both or neither`, {
          field: value.field,
        });
      }
      const client = await MatcherClient.fromOptions(options);
      const route = path(given.slice(0, keys.length).map((key) => encodeURIComponent(key as string)));
      const { body } = options.remove
        ? await client.json<PolicyAnswer>('DELETE', route)
        : await client.json<PolicyAnswer>('PUT', route, { [value.field]: value.parse(raw as string) });
      printVersion(body, options.json, 'is now the latest,');
    });
}

export function policyCommand(): Command {
  const positive = (what: string) => (raw: string) => number(raw, what, (n) => n > 0, 'a positive number');
  const whole = (what: string, min: number) => (raw: string) =>
    number(raw, what, (n) => Number.isInteger(n) && n >= min, `a whole number ≥ ${min}`);
  const integer = (what: string) => (raw: string) => number(raw, what, Number.isInteger, 'a whole number');
  return new Command('policy')
    .description('the scheduling policy: group shares, job-type ranks, running limits and matching delays')
    .addCommand(showCommand())
    .addCommand(setCommand())
    .addCommand(historyCommand())
    .addCommand(
      entryCommand(
        'share',
        "set one group's share (its weight against the VO's other groups), or --remove it",
        [['group', 'the group']],
        { name: 'share', field: 'share', parse: positive('share') },
        ([group]) => `/api/policy/groups/${group}`,
      ),
    )
    .addCommand(
      entryCommand(
        'rank',
        'set the strict rank of one job type (higher is served first), or --remove it',
        [['jobType', 'the job type']],
        { name: 'rank', field: 'rank', parse: integer('rank') },
        ([jobType]) => `/api/policy/job-type-ranks/${jobType}`,
      ),
    )
    .addCommand(
      entryCommand(
        'limit',
        'set how many jobs of a type may run at a site at once (* for any site or type), or --remove it',
        [
          ['site', 'the site, or * for any'],
          ['jobType', 'the job type, or * for any'],
        ],
        { name: 'maxRunning', field: 'maxRunning', parse: whole('maxRunning', 0) },
        ([site, jobType]) => `/api/policy/running-limits/${site}/${jobType}`,
      ),
    )
    .addCommand(
      entryCommand(
        'delay',
        'set the seconds between two matches of a job type at a site (* for any), or --remove it',
        [
          ['site', 'the site, or * for any'],
          ['jobType', 'the job type, or * for any'],
        ],
        { name: 'delaySec', field: 'delaySec', parse: positive('delaySec') },
        ([site, jobType]) => `/api/policy/matching-delays/${site}/${jobType}`,
      ),
    );
}
