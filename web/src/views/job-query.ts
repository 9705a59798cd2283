/**
 * The Job Monitor's query as the URL holds it, and as the search API takes it:
 *   cols=id,status,site   sort=submittedAt:desc,id:asc   f=status|in|Running,Stalled   f=submittedAt|last hours|24
 *   page=2   per=100   by=site
 */
import { JOB_COLUMNS, type ColumnType, type JobColumn } from '../../../shared/job/job-search.ts';

export const DEFAULT_COLUMNS: JobColumn[] = [
  'id',
  'status',
  'minorStatus',
  'site',
  'owner',
  'name',
  'jobType',
  'lastUpdateAt',
];
export const PAGE_SIZES = [25, 50, 100, 500, 1000];

export interface Filter {
  column: JobColumn;
  operator: string;
  value: string;
}

export const OPERATORS_BY_TYPE: Record<ColumnType, string[]> = {
  integer: ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'in', 'not in'],
  text: ['eq', 'neq', 'like', 'not like', 'in', 'not in'],
  status: ['eq', 'neq', 'in', 'not in'],
  time: ['last hours', 'gt', 'gte', 'lt', 'lte', 'eq', 'neq'],
};

export const isColumn = (name: string): name is JobColumn => Object.hasOwn(JOB_COLUMNS, name);

export interface MonitorQuery {
  columns: JobColumn[];
  sort: { column: JobColumn; direction: 'asc' | 'desc' }[];
  filters: Filter[];
  page: number;
  perPage: number;
  summaryBy: JobColumn;
}

export function readQuery(query: URLSearchParams): MonitorQuery {
  const columns = (query.get('cols') ?? '').split(',').filter(isColumn);
  const sort = (query.get('sort') ?? 'id:desc')
    .split(',')
    .map((key) => key.split(':'))
    .filter(([column]) => column !== undefined && isColumn(column))
    .map(([column, direction]) => ({
      column: column as JobColumn,
      direction: direction === 'asc' ? ('asc' as const) : ('desc' as const),
    }));
  const filters = query
    .getAll('f')
    .map((text) => text.split('|'))
    .filter((parts) => parts.length >= 3 && isColumn(parts[0] as string))
    .map(([column, operator, ...value]) => ({
      column: column as JobColumn,
      operator: operator as string,
      value: value.join('|'),
    }));
  const perPage = Number(query.get('per') ?? 50);
  const by = query.get('by') ?? 'status';
  return {
    columns: columns.length > 0 ? columns : DEFAULT_COLUMNS,
    sort,
    filters,
    page: Math.max(1, Number(query.get('page') ?? 1) || 1),
    perPage: PAGE_SIZES.includes(perPage) ? perPage : 50,
    summaryBy: isColumn(by) ? by : 'status',
  };
}

export const filterToUrl = (filter: Filter): string => `${filter.column}|${filter.operator}|${filter.value}`;
export const sortToUrl = (sort: MonitorQuery['sort']): string =>
  sort.map((key) => `${key.column}:${key.direction}`).join(',');

/** A filter as the API takes it (values typed by the column: numbers for integers and hours). */
export function filterToApi(filter: Filter): Record<string, unknown> {
  const type = JOB_COLUMNS[filter.column];
  const typed = (text: string): string | number | null =>
    text === 'null'
      ? null
      : type === 'integer' && text.trim() !== '' && !Number.isNaN(Number(text))
        ? Number(text)
        : text;
  if (filter.operator === 'in' || filter.operator === 'not in') {
    return {
      parameter: filter.column,
      operator: filter.operator,
      values: filter.value.split(',').map((v) => typed(v.trim())),
    };
  }
  if (filter.operator === 'last hours')
    return { parameter: filter.column, operator: filter.operator, value: Number(filter.value) };
  return { parameter: filter.column, operator: filter.operator, value: typed(filter.value) };
}
