/**
 * `pilothouse schedule`: recurring jobs kept and fired by the matcher. `add FILE --cron EXPR` makes
 * one from a job description (JSON or JDL; local input files are packed and uploaded as by `submit`)
 * and prints its next five fire times; `list`, `show`, `pause`, `resume`, `delete`, `runs`.
 */
import { Command, Option } from 'commander';
import { PilothouseError } from '../../shared/errors.ts';
import {
  CATCH_UP_POLICIES,
  OVERLAP_POLICIES,
  type ScheduleRunView,
  type ScheduleView,
} from '../../shared/schedule/schedule.ts';
import { MatcherClient, type ClientOptions } from '../client.ts';
import { printJson, table } from '../format.ts';
import { readJobs } from '../job-files.ts';
import { attachInputSandboxes, clientCommand, submissionBody } from './jobs.ts';

interface CommonOptions extends ClientOptions {
  json?: boolean;
}

type ShownSchedule = ScheduleView & { nextFireTimes: string[] };

function parseScheduleId(raw: string): number {
  const id = Number(raw);
  if (!Number.isInteger(id) || id <= 0) {
    throw new PilothouseError('CONFIG_INVALID', `schedule id must be a positive integer, not '${raw}'`, {
      field: 'id',
    });
  }
  return id;
}

const schedulePath = (id: string, action = ''): string => `/api/schedules/${parseScheduleId(id)}${action}`;

function describe(schedule: ShownSchedule): string {
  const limits = [
    schedule.startAt && `from ${schedule.startAt}`,
    schedule.endAt && `until ${schedule.endAt}`,
    schedule.maxRuns !== null && `at most ${schedule.maxRuns} runs`,
  ].filter(Boolean);
  return [
    `schedule ${schedule.id}${schedule.name ? ` (${schedule.name})` : ''}: ${schedule.state}, owner ${schedule.owner} (${schedule.vo} / ${schedule.group})`,
    `cron "${schedule.cron}" in ${schedule.timeZone}; overlap ${schedule.overlap}, catch-up ${schedule.catchUp}${limits.length > 0 ? `; ${limits.join(', ')}` : ''}`,
    `each run submits ${schedule.jobs.length} job(s): ${schedule.jobs
      .slice(0, 3)
      .map((job) => job.name || job.executable)
      .join(', ')}${schedule.jobs.length > 3 ? ', ...' : ''}`,
    `runs so far: ${schedule.runs}${schedule.lastSlotAt ? `, last slot ${schedule.lastSlotAt}` : ''}`,
    schedule.nextFireTimes.length > 0
      ? `next fire times:\n${schedule.nextFireTimes.map((time) => `  ${time}  (${localTime(time, schedule.timeZone)})`).join('\n')}`
      : 'next fire times: none',
  ].join('\n');
}

/** The slot as the schedule's time zone reads it, so a user checks the expression at a glance. */
function localTime(iso: string, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
    weekday: 'short',
    timeZoneName: 'short',
  }).formatToParts(new Date(iso));
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${part('weekday')} ${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')}:${part('second')} ${part('timeZoneName')}`;
}

interface AddOptions extends CommonOptions {
  cron: string;
  tz: string;
  overlap: string;
  catchUp: string;
  start?: string;
  end?: string;
  maxRuns?: string;
  name?: string;
}

function addCommand(): Command {
  return clientCommand(
    'add',
    'make a recurring schedule: the jobs of FILE (JSON or *.jdl, parametric allowed) are submitted at every slot of the cron expression',
  )
    .argument('<file>', 'job description file (JSON: one job or an array; or a DIRAC JDL); - reads stdin')
    .addOption(
      new Option(
        '--cron <expr>',
        'cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first',
      ).makeOptionMandatory(),
    )
    .option('--tz <zone>', 'IANA time zone the cron fields are read in, e.g. Europe/Paris', 'UTC')
    .addOption(
      new Option(
        '--overlap <policy>',
        'when a slot comes while an earlier run has unfinished jobs: skip the slot, allow both, or replace (kill) the old run',
      )
        .choices([...OVERLAP_POLICIES])
        .default('skip'),
    )
    .addOption(
      new Option(
        '--catch-up <policy>',
        'slots missed while no matcher could fire them: none (dropped) or one (one run for them all)',
      )
        .choices([...CATCH_UP_POLICIES])
        .default('none'),
    )
    .option('--start <time>', 'no slot before this ISO-8601 time (default: now)')
    .option('--end <time>', 'no slot at or after this ISO-8601 time (default: none)')
    .option('--max-runs <n>', 'end after this many runs (default: no limit)')
    .option('--name <name>', 'a name to recognise it by')
    .action(async (file: string, options: AddOptions) => {
      const client = await MatcherClient.fromOptions(options);
      const jobs = await readJobs([file], (message) => process.stderr.write(`warning: ${message}\n`));
      if (jobs.length === 0) throw new PilothouseError('VALIDATION_FAILED', `no job in ${file}`, { field: 'file' });
      await attachInputSandboxes(client, jobs);
      const job = await submissionBody([file], jobs);
      let maxRuns: number | undefined;
      if (options.maxRuns !== undefined) {
        maxRuns = Number(options.maxRuns);
        if (!Number.isInteger(maxRuns) || maxRuns < 1) {
          throw new PilothouseError(
            'CONFIG_INVALID',
            `--max-runs must be a positive whole number, not '${options.maxRuns}'`,
            {
              field: 'maxRuns',
            },
          );
        }
      }
      const { body } = await client.json<ShownSchedule>('POST', '/api/schedules', {
        cron: options.cron,
        timeZone: options.tz,
        overlap: options.overlap,
        catchUp: options.catchUp,
        ...(options.start !== undefined && { startAt: options.start }),
        ...(options.end !== undefined && { endAt: options.end }),
        ...(maxRuns !== undefined && { maxRuns }),
        ...(options.name !== undefined && { name: options.name }),
        job: Array.isArray(job) && job.length === 1 ? job[0] : job,
      });
      if (options.json) printJson(body);
      else process.stdout.write(`${describe(body)}\n`);
    });
}

function listCommand(): Command {
  return clientCommand('list', 'the schedules you may see, newest first').action(async (options: CommonOptions) => {
    const client = await MatcherClient.fromOptions(options);
    const { body } = await client.json<{ schedules: ShownSchedule[] }>('GET', '/api/schedules');
    if (options.json) {
      printJson(body);
      return;
    }
    const rows = body.schedules.map((s) => [
      s.id,
      s.name ?? '',
      s.state,
      s.cron,
      s.timeZone,
      s.overlap,
      s.catchUp,
      s.runs,
      s.nextFireAt ?? '',
      s.owner,
    ]);
    process.stdout.write(
      `${table(['id', 'name', 'state', 'cron', 'time zone', 'overlap', 'catch-up', 'runs', 'next slot', 'owner'], rows)}\n${body.schedules.length} schedule(s)\n`,
    );
  });
}

function showCommand(): Command {
  return clientCommand('show', 'one schedule, with its next five fire times')
    .argument('<id>', 'schedule id')
    .action(async (id: string, options: CommonOptions) => {
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<ShownSchedule>('GET', schedulePath(id));
      if (options.json) printJson(body);
      else process.stdout.write(`${describe(body)}\n`);
    });
}

function changeCommand(name: 'pause' | 'resume', description: string): Command {
  return clientCommand(name, description)
    .argument('<id>', 'schedule id')
    .action(async (id: string, options: CommonOptions) => {
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<ShownSchedule>('POST', schedulePath(id, `/${name}`));
      if (options.json) printJson(body);
      else process.stdout.write(`${describe(body)}\n`);
    });
}

function deleteCommand(): Command {
  return clientCommand('delete', 'delete a schedule and the record of its runs (its jobs stay)')
    .argument('<id>', 'schedule id')
    .action(async (id: string, options: CommonOptions) => {
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<{ scheduleId: number; deleted: boolean }>('DELETE', schedulePath(id));
      if (options.json) printJson(body);
      else process.stdout.write(`schedule ${body.scheduleId} deleted\n`);
    });
}

function runsCommand(): Command {
  return clientCommand(
    'runs',
    'what each slot became, newest first: the jobs and their status, or why it was skipped or missed',
  )
    .argument('<id>', 'schedule id')
    .option('--limit <n>', 'at most this many slots (1..10000)', '100')
    .action(async (id: string, options: CommonOptions & { limit: string }) => {
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<{ runs: ScheduleRunView[] }>(
        'GET',
        `${schedulePath(id, '/runs')}?${new URLSearchParams({ limit: options.limit })}`,
      );
      if (options.json) {
        printJson(body);
        return;
      }
      const rows = body.runs.map((run) => [
        run.slotAt,
        run.outcome,
        run.jobs.map((job) => `${job.id}:${job.status}`).join(' ') || '-',
        run.missedSlots > 0 ? run.missedSlots : '',
        run.reason ?? '',
      ]);
      process.stdout.write(
        `${table(['slot', 'outcome', 'jobs', 'missed', 'why'], rows)}\n${body.runs.length} slot(s)\n`,
      );
    });
}

export function scheduleCommand(): Command {
  return new Command('schedule')
    .description('recurring jobs: submitted by the matcher at every slot of a cron expression, exactly once per slot')
    .addCommand(addCommand())
    .addCommand(listCommand())
    .addCommand(showCommand())
    .addCommand(changeCommand('pause', 'stop firing a schedule (slots while paused are not caught up)'))
    .addCommand(changeCommand('resume', 'fire again, from the first slot after now'))
    .addCommand(deleteCommand())
    .addCommand(runsCommand());
}
