/**
 * `pilothouse tq`: the task queues an administrator steers. `tq` (or `tq list`) lists them with
 * filters and sorting; `tq show ID` prints one with its standing and why nothing takes it; `pause`,
 * `resume`, `boost`, `kill` and `reschedule` change it at run time. Job administrators act within
 * their VO, service administrators everywhere (the matcher decides).
 */
import { Command, Option } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import { MatcherClient, type ClientOptions } from '../client.ts';
import { EXIT } from '../exit.ts';
import { printJson, table } from '../format.ts';
import { clientCommand } from './jobs.ts';

interface CommonOptions extends ClientOptions {
  json?: boolean;
}

interface TaskQueueRow {
  id: number;
  vo: string;
  group: string;
  owner: string;
  waitingJobs: number;
  boost: number;
  paused: { at: string; by: string; reason: string } | null;
  oldestWaitingSince: string | null;
  requirements: {
    coresMin: number;
    coresMax: number;
    wallTimeSec: number;
    jobType: string;
    sites: string[];
    tags: string[];
    platform: string | null;
  };
}

interface TaskQueueDetail extends TaskQueueRow {
  standing: Record<string, unknown>;
  /** Jobs the owner and the group hold now (Matched, Running, Completing, Stalled). */
  held: { owner: number; group: number };
  idlePilots: number;
  fitting: { pilots: { pilotId?: string; site: string; ce: string | null }[]; sites: string[] };
  whyIdle: string[];
}

const BOOST_LIMIT = 1000;

function parseTaskQueueId(raw: string): number {
  const id = Number(raw);
  if (!Number.isInteger(id) || id <= 0) {
    throw new PilothouseError('CONFIG_INVALID', `task queue id must be a positive integer, not '${raw}'`, {
      field: 'id',
    });
  }
  return id;
}

function parseBoost(raw: string): number {
  const boost = Number(raw);
  if (!Number.isInteger(boost) || Math.abs(boost) > BOOST_LIMIT) {
    throw new PilothouseError(
      'CONFIG_INVALID',
      `boost must be a whole number from -${BOOST_LIMIT} to ${BOOST_LIMIT}, not '${raw}'`,
      { field: 'boost' },
    );
  }
  return boost;
}

const tqPath = (id: string, action = ''): string => `/api/task-queues/${parseTaskQueueId(id)}${action}`;

const cores = (r: TaskQueueRow['requirements']): string =>
  r.coresMin === r.coresMax ? String(r.coresMin) : `${r.coresMin}-${r.coresMax}`;

interface ListOptions extends CommonOptions {
  vo?: string;
  group?: string;
  owner?: string;
  jobType?: string;
  paused?: boolean;
  running?: boolean;
  sort: string;
  limit: string;
}

function listCommand(): Command {
  return clientCommand('list', 'task queues with waiting jobs, filtered and sorted (the default of `tq`)')
    .option('--vo <vo>', 'task queues of this VO (default: yours; every VO for service administrators)')
    .option('--group <group>', 'of this group')
    .option('--owner <owner>', 'of this owner')
    .option('--job-type <type>', 'of this job type')
    .option('--paused', 'only paused task queues')
    .option('--running', 'only task queues that are not paused')
    .addOption(
      new Option('--sort <key>', 'order: waiting (jobs), oldest (waiting job), boost or id; - first for descending')
        .choices(['id', 'waiting', '-waiting', 'oldest', '-oldest', 'boost', '-boost'])
        .default('-waiting'),
    )
    .option('--limit <n>', 'at most this many task queues (1..10000)', '1000')
    .action(async (options: ListOptions) => {
      if (options.paused && options.running) {
        throw new PilothouseError('CONFIG_INVALID', 'give --paused or --running, not both', { field: 'paused' });
      }
      const query = new URLSearchParams({ sort: options.sort, limit: options.limit });
      for (const [name, value] of [
        ['vo', options.vo],
        ['group', options.group],
        ['owner', options.owner],
        ['jobType', options.jobType],
        ['paused', options.paused ? 'true' : options.running ? 'false' : undefined],
      ] as const) {
        if (value !== undefined) query.set(name, value);
      }
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<{ total: number; taskQueues: TaskQueueRow[] }>(
        'GET',
        `/api/task-queues?${query}`,
      );
      if (options.json) {
        printJson(body);
        return;
      }
      const rows = body.taskQueues.map((tq) => [
        tq.id,
        tq.paused ? 'paused' : 'active',
        tq.waitingJobs,
        tq.oldestWaitingSince,
        tq.boost,
        tq.vo,
        tq.group,
        tq.owner || '(group)',
        tq.requirements.jobType,
        cores(tq.requirements),
        tq.requirements.wallTimeSec,
        tq.requirements.sites.join(',') || 'any',
      ]);
      const header = ['tq', 'state', 'jobs', 'oldest waiting', 'boost', 'vo', 'group', 'owner', 'type', 'cores'];
      process.stdout.write(
        `${table([...header, 'wall s', 'sites'], rows)}\n${body.taskQueues.length} of ${body.total} task queue(s)\n`,
      );
    });
}

function showCommand(): Command {
  return clientCommand('show', 'one task queue: requirements, standing, held jobs, pilots that fit, why it is idle')
    .argument('<id>', 'task queue id')
    .action(async (id: string, options: CommonOptions) => {
      const client = await MatcherClient.fromOptions(options);
      const { body: tq } = await client.json<TaskQueueDetail>('GET', tqPath(id));
      if (options.json) {
        printJson(tq);
        return;
      }
      const r = tq.requirements;
      const lines = [
        `task queue ${tq.id}: ${tq.vo} / ${tq.group} / ${tq.owner || '(group)'}, job type ${r.jobType}`,
        `state: ${tq.paused ? `paused by ${tq.paused.by} at ${tq.paused.at}: ${tq.paused.reason}` : 'active'}`,
        `waiting jobs: ${tq.waitingJobs}${tq.oldestWaitingSince ? `, the oldest since ${tq.oldestWaitingSince}` : ''}`,
        `requirements: ${cores(r)} core(s), ${r.wallTimeSec} s, platform ${r.platform ?? 'any'}, sites ${r.sites.join(',') || 'any'}, tags ${r.tags.join(',') || 'none'}`,
        `standing: ${Object.entries(tq.standing)
          .map(([key, value]) => `${key} ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`)
          .join(', ')}`,
        `jobs held now (matched or running): ${tq.held.owner} by the owner, ${tq.held.group} by the group`,
        `idle pilots of the VO: ${tq.idlePilots}; fitting: ${tq.fitting.pilots.length} at ${tq.fitting.sites.join(', ') || 'no site'}`,
        ...(tq.whyIdle.length > 0 ? ['why nothing takes it:', ...tq.whyIdle.map((reason) => `  - ${reason}`)] : []),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

/** A change of one TQ: the TQ after it, whether anything changed, and the waiting jobs it touched. */
interface ChangeAnswer {
  taskQueue: TaskQueueRow;
  changed: boolean;
  jobs: number;
}

function pauseCommand(): Command {
  return clientCommand('pause', 'pause a task queue: matching skips it, its jobs stay Waiting and say why')
    .argument('<id>', 'task queue id')
    .addOption(
      new Option('--reason <text>', 'why (shown in the minor status and the jobs’ history)').makeOptionMandatory(),
    )
    .action(async (id: string, options: CommonOptions & { reason: string }) => {
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<ChangeAnswer>('POST', tqPath(id, '/pause'), { reason: options.reason });
      if (options.json) printJson(body);
      else
        process.stdout.write(
          `task queue ${body.taskQueue.id} paused${body.changed ? '' : ' (it already was)'}; ${body.jobs} waiting job(s)\n`,
        );
    });
}

function resumeCommand(): Command {
  return clientCommand('resume', 'resume a paused task queue: its jobs are matched again in the order they had')
    .argument('<id>', 'task queue id')
    .action(async (id: string, options: CommonOptions) => {
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<ChangeAnswer>('POST', tqPath(id, '/resume'));
      if (options.json) printJson(body);
      else
        process.stdout.write(
          `task queue ${body.taskQueue.id} resumed${body.changed ? '' : ' (it was not paused)'}; ${body.jobs} waiting job(s)\n`,
        );
    });
}

function boostCommand(): Command {
  return clientCommand(
    'boost',
    `boost a task queue (or with --owner every task queue of one owner): among the task queues a pilot fits, the highest boost is served first; 0 removes it (-${BOOST_LIMIT}..${BOOST_LIMIT})`,
  )
    .argument('[id]', 'task queue id (not with --owner)')
    .argument('[boost]', 'the boost, a whole number (required)')
    .option('--owner <owner>', 'boost every task queue of this owner instead of one')
    .option('--vo <vo>', "with --owner: the owner's VO (default: yours)")
    .allowExcessArguments(false)
    .action(
      async (
        first: string | undefined,
        second: string | undefined,
        options: CommonOptions & { owner?: string; vo?: string },
      ) => {
        // Both are optional to commander, which fills the id first: `tq boost --owner o 5` is boost 5, no id.
        const [id, raw] = second === undefined ? [undefined, first] : [first, second];
        if (raw === undefined) throw new PilothouseError('CONFIG_INVALID', 'give the boost', { field: 'boost' });
        const boost = parseBoost(raw);
        if ((id === undefined) === (options.owner === undefined)) {
          throw new PilothouseError('CONFIG_INVALID', 'give a task queue id or --owner, not both or neither', {
            field: 'owner',
          });
        }
        const client = await MatcherClient.fromOptions(options);
        if (id !== undefined) {
          const { body } = await client.json<ChangeAnswer>('POST', tqPath(id, '/boost'), { boost });
          if (options.json) printJson(body);
          else process.stdout.write(`task queue ${body.taskQueue.id} boost ${boost}; ${body.jobs} waiting job(s)\n`);
          return;
        }
        const { body } = await client.json<{
          owner: string;
          vo: string;
          boost: number;
          taskQueues: { taskQueueId: number; changed: boolean; jobs: number }[];
        }>('POST', '/api/task-queues/boost', {
          owner: options.owner,
          boost,
          ...(options.vo !== undefined && { vo: options.vo }),
        });
        if (options.json) printJson(body);
        else
          process.stdout.write(
            `${body.taskQueues.length} task queue(s) of ${body.owner} (${body.vo}) boosted to ${body.boost}: ${body.taskQueues.map((tq) => tq.taskQueueId).join(', ') || 'none has waiting jobs'}\n`,
          );
      },
    );
}

function allJobsCommand(operation: 'kill' | 'reschedule'): Command {
  return clientCommand(
    operation,
    operation === 'kill'
      ? 'kill every job of a task queue that has not ended'
      : 'reschedule every job of a task queue that a pilot holds',
  )
    .argument('<id>', 'task queue id')
    .action(async (id: string, options: CommonOptions) => {
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<{
        taskQueueId: number;
        selected: number;
        changed: number;
        unchanged: number;
        failed: Record<string, number>;
      }>('POST', tqPath(id, `/${operation}`));
      const failed = Object.values(body.failed).reduce((sum, n) => sum + n, 0);
      if (options.json) printJson(body);
      else
        process.stdout.write(
          `task queue ${body.taskQueueId}: ${body.selected} job(s) selected, ${body.changed} ${operation === 'kill' ? 'killed' : 'rescheduled'}, ${body.unchanged} unchanged, ${failed} failed${failed > 0 ? ` ${JSON.stringify(body.failed)}` : ''}\n`,
        );
      // Some jobs refused (e.g. no attempts left): a script must see that not everything happened.
      if (failed > 0) process.exitCode = EXIT.failure;
    });
}

export function taskQueuesCommand(): Command {
  return new Command('tq')
    .description('task queues: list, show and steer them at run time (job administrators of their VO)')
    .addCommand(listCommand(), { isDefault: true })
    .addCommand(showCommand())
    .addCommand(pauseCommand())
    .addCommand(resumeCommand())
    .addCommand(boostCommand())
    .addCommand(allJobsCommand('kill'))
    .addCommand(allJobsCommand('reschedule'));
}
