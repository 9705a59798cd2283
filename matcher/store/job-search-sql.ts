/**
 * A job search as SQL, for both stores: the WHERE clause of its selection (the shortcut lists and the
 * typed filters), its ORDER BY, and the keyset condition that starts a page after a given row. Only
 * bound parameters reach the SQL text; column names come from a fixed table.
 *
 * NULLs sort as larger than any value in both stores (ASC NULLS LAST, DESC NULLS FIRST), so a page
 * boundary means the same row order on SQLite and PostgreSQL.
 */
import { JOB_COLUMNS, NULLABLE_JOB_COLUMNS, type JobColumn, type JobSortKey } from '../../shared/job/job-search.ts';
import type { JobCount, JobQuery, JobSelection } from './job-store.ts';
import { WhereClause } from './sqlite/where-clause.ts';

export const JOB_COLUMN_SQL: Readonly<Record<JobColumn, string>> = {
  id: 'id',
  vo: 'vo',
  group: 'grp',
  owner: 'owner',
  name: 'name',
  jobType: 'job_type',
  jobGroup: 'job_group',
  priority: 'priority',
  status: 'status',
  minorStatus: 'minor_status',
  applicationStatus: 'application_status',
  exitCode: 'exit_code',
  site: 'site',
  ce: 'ce',
  pilotId: 'pilot_id',
  attempt: 'attempt',
  taskQueueId: 'task_queue_id',
  submittedAt: 'submitted_at',
  startedAt: 'started_at',
  endedAt: 'ended_at',
  lastUpdateAt: 'last_update_at',
  heartbeatAt: 'heartbeat_at',
};

export interface SqlDialect {
  placeholder(position: number): string;
  /** Case-insensitive LIKE, as DIRAC's MySQL collation behaves: SQLite's LIKE, PostgreSQL's ILIKE. */
  likeOperator: 'LIKE' | 'ILIKE';
  /**
   * Appended to text columns where order matters (sorting, ranges, page boundaries), so both stores
   * order text by its bytes whatever collation a PostgreSQL database was created with.
   */
  byteOrder: string;
}

export const SQLITE_DIALECT: SqlDialect = { placeholder: () => '?', likeOperator: 'LIKE', byteOrder: '' };
export const POSTGRES_DIALECT: SqlDialect = {
  placeholder: (n) => `$${n}`,
  likeOperator: 'ILIKE',
  byteOrder: ' COLLATE "C"',
};

/** The column as an ordered expression: text compared byte by byte in both stores. */
function ordered(column: JobColumn, dialect: SqlDialect): string {
  const type = JOB_COLUMNS[column];
  return type === 'text' || type === 'status'
    ? `${JOB_COLUMN_SQL[column]}${dialect.byteOrder}`
    : JOB_COLUMN_SQL[column];
}

const COMPARISONS = { eq: '=', neq: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;

/** The WHERE clause of a selection, with its parameters. */
export function selectionWhere(selection: JobSelection, dialect: SqlDialect): WhereClause {
  const where = new WhereClause(dialect.placeholder)
    .in('id', selection.ids)
    .in('status', selection.statuses)
    .in('owner', selection.owners)
    .in('grp', selection.groups)
    .in('vo', selection.vos)
    .in('site', selection.sites)
    .in('job_type', selection.jobTypes)
    .in('pilot_id', selection.pilotIds);
  for (const filter of selection.filters ?? []) {
    const column = JOB_COLUMN_SQL[filter.column];
    const nullable = NULLABLE_JOB_COLUMNS.has(filter.column);
    switch (filter.operator) {
      case 'in':
        where.in(column, filter.values);
        break;
      case 'not in':
        // A job without a value is "not in" any list of values.
        if (filter.values.length === 0) break;
        where.group((inner) => {
          inner.notIn(column, filter.values);
          if (nullable) inner.raw(`${column} IS NULL`);
        }, 'OR');
        break;
      case 'like':
      case 'not like': {
        const negated = filter.operator === 'not like' ? 'NOT ' : '';
        if (filter.value === null) throw new Error('like takes a pattern');
        where.group((inner) => {
          inner.when(`${column} ${negated}${dialect.likeOperator} ? ESCAPE '\\'`, filter.value);
          if (nullable && negated) inner.raw(`${column} IS NULL`);
        }, 'OR');
        break;
      }
      default: {
        if (filter.value === null) {
          if (filter.operator === 'eq') where.raw(`${column} IS NULL`);
          else if (filter.operator === 'neq') where.raw(`${column} IS NOT NULL`);
          else where.raw('1 = 0');
          break;
        }
        if (filter.operator === 'neq' && nullable) {
          where.group((inner) => inner.when(`${column} <> ?`, filter.value).raw(`${column} IS NULL`), 'OR');
          break;
        }
        const compared = filter.operator === 'eq' ? column : ordered(filter.column, dialect);
        where.when(`${compared} ${COMPARISONS[filter.operator]} ?`, filter.value);
      }
    }
  }
  return where;
}

/** The sort keys with `id` last (in the direction of the last key), so every row has one place. */
export function completeSort(sort: readonly JobSortKey[]): JobSortKey[] {
  if (sort.some((key) => key.column === 'id')) {
    return sort.slice(0, sort.findIndex((key) => key.column === 'id') + 1);
  }
  return [...sort, { column: 'id', direction: sort.at(-1)?.direction ?? 'asc' }];
}

export function orderBySql(sort: readonly JobSortKey[], dialect: SqlDialect): string {
  return completeSort(sort)
    .map(({ column, direction }) => {
      const sql = `${ordered(column, dialect)} ${direction === 'desc' ? 'DESC' : 'ASC'}`;
      if (!NULLABLE_JOB_COLUMNS.has(column)) return sql;
      return `${sql} ${direction === 'desc' ? 'NULLS FIRST' : 'NULLS LAST'}`;
    })
    .join(', ');
}

/**
 * Adds "comes after the row whose sort values are `after`" to `where`: for keys k1..kn,
 * (k1 after v1) OR (k1 = v1 AND k2 after v2) OR ..., NULL-aware for nullable columns.
 */
export function addKeysetCondition(where: WhereClause, query: JobQuery, dialect: SqlDialect): void {
  if (query.after === undefined) return;
  const keys = completeSort(query.sort);
  const after = query.after;
  if (after.length !== keys.length) throw new Error('a keyset boundary needs one value per sort key');
  where.group((anyOf) => {
    keys.forEach((key, index) => {
      anyOf.group((allOf) => {
        for (let i = 0; i < index; i += 1) equalTo(allOf, keys[i]!.column, after[i] ?? null);
        strictlyAfter(allOf, key, after[index] ?? null, dialect);
      }, 'AND');
    });
  }, 'OR');
}

function equalTo(where: WhereClause, column: JobColumn, value: string | number | null): void {
  if (value === null) where.raw(`${JOB_COLUMN_SQL[column]} IS NULL`);
  else where.when(`${JOB_COLUMN_SQL[column]} = ?`, value);
}

function strictlyAfter(where: WhereClause, key: JobSortKey, value: string | number | null, dialect: SqlDialect): void {
  const column = ordered(key.column, dialect);
  const nullable = NULLABLE_JOB_COLUMNS.has(key.column);
  if (key.direction === 'asc') {
    // NULLS LAST: nothing comes after a NULL; after a value come larger values, then the NULLs.
    if (value === null) where.raw('1 = 0');
    else if (nullable) where.group((inner) => inner.when(`${column} > ?`, value).raw(`${column} IS NULL`), 'OR');
    else where.when(`${column} > ?`, value);
  } else {
    // NULLS FIRST: after a NULL come all the values; after a value, smaller values.
    if (value === null) where.raw(`${column} IS NOT NULL`);
    else where.when(`${column} < ?`, value);
  }
}

/** A summary row (`g0`, `g1`, ... and `n`) as a group of named column values. */
export function summaryGroup(row: Record<string, string | number | null>, groupBy: readonly JobColumn[]): JobCount {
  const values: JobCount['values'] = {};
  groupBy.forEach((column, index) => {
    values[column] = row[`g${index}`] ?? null;
  });
  return { values, count: Number(row['n']) };
}
