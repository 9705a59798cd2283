/**
 * The vocabulary of a job search, shared by the matcher (which validates and runs it), the CLI (which
 * builds it from flags) and the web monitor: the columns a search may filter, sort, return and group
 * by, their types, the operators, and DIRAC's column names accepted as aliases so a DiracX query
 * (`{"parameter": "Status", "operator": "eq", "value": "Done"}`) works unchanged.
 */
import { JOB_STATUSES, type JobStatus } from './status.ts';

/** How a column's values are typed: what a filter value must be, and which operators make sense. */
export type ColumnType = 'integer' | 'text' | 'status' | 'time';

export const JOB_COLUMNS = {
  id: 'integer',
  vo: 'text',
  group: 'text',
  owner: 'text',
  name: 'text',
  jobType: 'text',
  jobGroup: 'text',
  priority: 'integer',
  status: 'status',
  minorStatus: 'text',
  applicationStatus: 'text',
  exitCode: 'integer',
  site: 'text',
  ce: 'text',
  pilotId: 'text',
  attempt: 'integer',
  taskQueueId: 'integer',
  submittedAt: 'time',
  startedAt: 'time',
  endedAt: 'time',
  lastUpdateAt: 'time',
  heartbeatAt: 'time',
} as const satisfies Record<string, ColumnType>;

export type JobColumn = keyof typeof JOB_COLUMNS;
export const JOB_COLUMN_NAMES = Object.keys(JOB_COLUMNS) as JobColumn[];

/** Columns a job may have no value in (a waiting job has no site); `eq null` finds those. */
export const NULLABLE_JOB_COLUMNS: ReadonlySet<JobColumn> = new Set([
  'jobGroup',
  'exitCode',
  'site',
  'ce',
  'pilotId',
  'taskQueueId',
  'startedAt',
  'endedAt',
  'heartbeatAt',
]);

/** Columns a summary may group by: not the unique ones (ids, times), whose groups would be single jobs. */
export const GROUPABLE_JOB_COLUMNS: readonly JobColumn[] = JOB_COLUMN_NAMES.filter(
  (column) => column !== 'id' && JOB_COLUMNS[column] !== 'time',
);

/** DIRAC's JobDB column names (as DiracX searches use them) for the same columns. */
export const DIRAC_COLUMN_ALIASES: Readonly<Record<string, JobColumn>> = {
  JobID: 'id',
  VO: 'vo',
  OwnerGroup: 'group',
  Owner: 'owner',
  JobName: 'name',
  JobType: 'jobType',
  JobGroup: 'jobGroup',
  UserPriority: 'priority',
  Status: 'status',
  MinorStatus: 'minorStatus',
  ApplicationStatus: 'applicationStatus',
  Site: 'site',
  PilotReference: 'pilotId',
  PilotStamp: 'pilotId',
  RescheduleCounter: 'attempt',
  SubmissionTime: 'submittedAt',
  StartExecTime: 'startedAt',
  EndExecTime: 'endedAt',
  LastUpdateTime: 'lastUpdateAt',
  HeartBeatTime: 'heartbeatAt',
};

/** A column by its own name or its DIRAC alias; undefined when it is neither. */
export function jobColumnNamed(name: string): JobColumn | undefined {
  if (Object.hasOwn(JOB_COLUMNS, name)) return name as JobColumn;
  return Object.hasOwn(DIRAC_COLUMN_ALIASES, name) ? DIRAC_COLUMN_ALIASES[name] : undefined;
}

export const SCALAR_OPERATORS = ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'like', 'not like'] as const;
export const VECTOR_OPERATORS = ['in', 'not in'] as const;
/** `{"operator": "last hours", "value": 24}`: the column's time is within the last 24 hours. */
export const RELATIVE_TIME_OPERATOR = 'last hours';
export const SEARCH_OPERATORS = [...SCALAR_OPERATORS, ...VECTOR_OPERATORS, RELATIVE_TIME_OPERATOR] as const;

export type ScalarOperator = (typeof SCALAR_OPERATORS)[number];
export type VectorOperator = (typeof VECTOR_OPERATORS)[number];
export type FilterValue = string | number;

/** A filter as the store runs it: typed values, relative times already resolved to an instant. */
export type JobFilter =
  | { column: JobColumn; operator: ScalarOperator; value: FilterValue | null }
  | { column: JobColumn; operator: VectorOperator; values: FilterValue[] };

export interface JobSortKey {
  column: JobColumn;
  direction: 'asc' | 'desc';
}

/** Which operators a column type takes: ordering on a status or LIKE on a number means nothing. */
export function operatorFits(type: ColumnType, operator: string): boolean {
  if (operator === 'like' || operator === 'not like') return type === 'text';
  if (operator === RELATIVE_TIME_OPERATOR) return type === 'time';
  if (['gt', 'gte', 'lt', 'lte'].includes(operator)) return type !== 'status';
  return true;
}

/**
 * A filter value checked against its column's type: a whole number for integer columns, a known
 * status, an instant (any form `Date` reads, stored as ISO-8601 UTC) for times. Returns the value as
 * the store compares it, or a message saying what is wrong.
 */
export function typedFilterValue(
  column: JobColumn,
  value: unknown,
): { ok: true; value: FilterValue } | { ok: false; message: string } {
  const type = JOB_COLUMNS[column];
  if (type === 'integer') {
    const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
    return typeof n === 'number' && Number.isSafeInteger(n)
      ? { ok: true, value: n }
      : { ok: false, message: `${column} takes whole numbers, not ${JSON.stringify(value)}` };
  }
  if (typeof value !== 'string') return { ok: false, message: `${column} takes text, not ${JSON.stringify(value)}` };
  if (type === 'status') {
    return (JOB_STATUSES as readonly string[]).includes(value)
      ? { ok: true, value: value as JobStatus }
      : { ok: false, message: `${JSON.stringify(value)} is not a status (${JOB_STATUSES.join(', ')})` };
  }
  if (type === 'time') {
    const ms = Date.parse(value);
    return Number.isNaN(ms)
      ? { ok: false, message: `${column} takes an ISO-8601 time, not ${JSON.stringify(value)}` }
      : { ok: true, value: new Date(ms).toISOString() };
  }
  return { ok: true, value };
}
