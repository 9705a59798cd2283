/**
 * A search request as a store query: the body's schema (DiracX's `parameters`, `search`, `sort` and
 * this API's shortcut lists), the typed check of every filter against its column, the narrowing to
 * what the caller may see, and the keyset cursor that lets a client page through a million jobs
 * without a count and an OFFSET scan on every page.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { PilothouseError } from '../../../shared/errors.ts';
import { JOB_STATUSES } from '../../../shared/job/status.ts';
import {
  GROUPABLE_JOB_COLUMNS,
  JOB_COLUMN_NAMES,
  JOB_COLUMNS,
  NULLABLE_JOB_COLUMNS,
  RELATIVE_TIME_OPERATOR,
  SEARCH_OPERATORS,
  jobColumnNamed,
  operatorFits,
  typedFilterValue,
  type JobColumn,
  type JobFilter,
  type JobSortKey,
} from '../../../shared/job/job-search.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import { isAdministrator, isJobAdministratorFor } from '../../auth/policy.ts';
import type { JobQuery, JobSelection } from '../../store/job-store.ts';

export const MAX_PER_PAGE = 10_000;
const MAX_FILTERS = 50;
const MAX_SORT_KEYS = 5;
/** `last hours` reaches back at most this far (a century), so the instant stays representable. */
const MAX_LAST_HOURS = 24 * 365 * 100;

const oneOrMany = <T extends z.ZodType>(schema: T) =>
  z.union([schema, z.array(schema).max(10_000)]).transform((v) => (Array.isArray(v) ? v : [v]) as z.output<T>[]);

const filterSchema = z.strictObject({
  parameter: z.string().max(64),
  operator: z.enum(SEARCH_OPERATORS),
  value: z.union([z.string().max(1024), z.number(), z.null()]).optional(),
  values: z
    .array(z.union([z.string().max(1024), z.number()]))
    .max(10_000)
    .optional(),
});

const sortKeySchema = z.strictObject({
  parameter: z.string().max(64),
  direction: z.enum(['asc', 'desc']).default('asc'),
});
/** This API's first form, `{field, direction}`, still accepted. */
const legacySortSchema = z
  .strictObject({ field: z.string().max(64), direction: z.enum(['asc', 'desc']).default('asc') })
  .transform(({ field, direction }) => [{ parameter: field, direction }]);

/** The selection part of a search: DiracX's `search` list and the shortcut lists, all ANDed. */
export const filterListSchema = z.array(filterSchema).max(MAX_FILTERS);

export const selectionFields = {
  search: filterListSchema.optional(),
  ids: z.array(z.int().positive()).max(10_000).optional(),
  status: oneOrMany(z.enum(JOB_STATUSES)).optional(),
  owner: oneOrMany(z.string()).optional(),
  group: oneOrMany(z.string()).optional(),
  vo: oneOrMany(z.string()).optional(),
  site: oneOrMany(z.string()).optional(),
  jobType: oneOrMany(z.string()).optional(),
  pilotId: oneOrMany(z.string()).optional(),
};
export const selectionSchema = z.strictObject(selectionFields);

export const searchSchema = z.strictObject({
  ...selectionFields,
  parameters: z.array(z.string().max(64)).max(64).optional(),
  sort: z.union([z.array(sortKeySchema).max(MAX_SORT_KEYS), legacySortSchema]).optional(),
  page: z.int().min(1).optional(),
  perPage: z.int().min(1).max(MAX_PER_PAGE).optional(),
  cursor: z.string().max(4096).optional(),
});

export const summarySchema = z.strictObject({
  ...selectionFields,
  grouping: z.array(z.string().max(64)).min(1).max(4),
});

export type SearchBody = z.output<typeof searchSchema>;
type SelectionBody = z.output<typeof selectionSchema>;

function badQuery(field: string, message: string): PilothouseError {
  return new PilothouseError('BAD_QUERY', `${field}: ${message}`, { field });
}

export function columnOrThrow(
  name: string,
  field: string,
  allowed: readonly JobColumn[] = JOB_COLUMN_NAMES,
): JobColumn {
  const column = jobColumnNamed(name);
  if (column === undefined) throw badQuery(field, `unknown column '${name}' (columns: ${allowed.join(', ')})`);
  if (!allowed.includes(column))
    throw badQuery(field, `'${name}' cannot be used here (columns: ${allowed.join(', ')})`);
  return column;
}

/** One `search` entry checked against its column: known column, fitting operator, typed values. */
function typedFilter(raw: z.output<typeof filterSchema>, index: number, nowMs: number): JobFilter {
  const at = `search.${index}`;
  const column = columnOrThrow(raw.parameter, `${at}.parameter`);
  const type = JOB_COLUMNS[column];
  const { operator } = raw;
  if (!operatorFits(type, operator)) throw badQuery(`${at}.operator`, `'${operator}' does not apply to ${column}`);
  const typed = (value: unknown, field: string) => {
    const result = typedFilterValue(column, value);
    if (!result.ok) throw badQuery(field, result.message);
    return result.value;
  };
  if (operator === 'in' || operator === 'not in') {
    if (raw.values === undefined) throw badQuery(`${at}.values`, `'${operator}' takes a list of values`);
    if (raw.value !== undefined) throw badQuery(`${at}.value`, `'${operator}' takes values, not value`);
    return { column, operator, values: raw.values.map((v, i) => typed(v, `${at}.values.${i}`)) };
  }
  if (raw.values !== undefined) throw badQuery(`${at}.values`, `'${operator}' takes one value, not values`);
  if (raw.value === undefined) throw badQuery(`${at}.value`, `'${operator}' takes a value`);
  if (operator === RELATIVE_TIME_OPERATOR) {
    const hours = raw.value;
    if (typeof hours !== 'number' || !(hours > 0) || hours > MAX_LAST_HOURS) {
      throw badQuery(`${at}.value`, `'last hours' takes a number of hours above 0 (at most ${MAX_LAST_HOURS})`);
    }
    return { column, operator: 'gte', value: new Date(nowMs - hours * 3_600_000).toISOString() };
  }
  if (raw.value === null) {
    if (operator !== 'eq' && operator !== 'neq')
      throw badQuery(`${at}.value`, `'${operator}' cannot compare with null`);
    if (!NULLABLE_JOB_COLUMNS.has(column)) throw badQuery(`${at}.value`, `${column} always has a value`);
    return { column, operator, value: null };
  }
  return { column, operator, value: typed(raw.value, `${at}.value`) };
}

/** Narrows a selection to what the caller may see: own jobs, the group's when it shares, the VO's for admins. */
export function visibleSelection(principal: Principal, selection: JobSelection): JobSelection {
  if (isAdministrator(principal)) return selection;
  const inVo: JobSelection = { ...selection, vos: [principal.vo] };
  if (isJobAdministratorFor(principal, principal.vo)) return inVo;
  if (principal.properties.includes('JobSharing')) return { ...inVo, groups: [principal.group] };
  return { ...inVo, owners: [principal.subject] };
}

/** A selection body as the store's selection, checked and narrowed to what the caller may see. */
export function jobSelectionOf(principal: Principal, body: SelectionBody, nowMs: number): JobSelection {
  const filters = (body.search ?? []).map((raw, index) => typedFilter(raw, index, nowMs));
  return visibleSelection(principal, {
    ...(body.ids && { ids: body.ids }),
    ...(body.status && { statuses: body.status }),
    ...(body.owner && { owners: body.owner }),
    ...(body.group && { groups: body.group }),
    ...(body.vo && { vos: body.vo }),
    ...(body.site && { sites: body.site }),
    ...(body.jobType && { jobTypes: body.jobType }),
    ...(body.pilotId && { pilotIds: body.pilotId }),
    ...(filters.length > 0 && { filters }),
  });
}

export function sortKeysOf(sort: SearchBody['sort']): JobSortKey[] {
  if (sort === undefined || sort.length === 0) return [{ column: 'id', direction: 'asc' }];
  return sort.map((key, index) => ({
    column: columnOrThrow(key.parameter, `sort.${index}.parameter`),
    direction: key.direction,
  }));
}

export function groupingOf(grouping: string[]): JobColumn[] {
  const columns = grouping.map((name, index) => columnOrThrow(name, `grouping.${index}`, GROUPABLE_JOB_COLUMNS));
  if (new Set(columns).size !== columns.length) throw badQuery('grouping', 'a column is named twice');
  return columns;
}

/** Where a keyset page starts, and what it was computed for, carried by the client between pages. */
export interface SearchCursor {
  /** The sort values (ending with the id) of the last row of the previous page. */
  after: (string | number | null)[];
  /** Rows before the next page: the first index of its Content-Range. */
  offset: number;
  /** The selection's size when the first page was read. */
  total: number;
  /** Hash of the selection and sort: a cursor only continues the search that made it. */
  fingerprint: string;
}

export function searchFingerprint(selection: JobSelection, sort: readonly JobSortKey[]): string {
  return createHash('sha256')
    .update(JSON.stringify([selection, sort]))
    .digest('base64url')
    .slice(0, 22);
}

export function encodeCursor(cursor: SearchCursor): string {
  return Buffer.from(JSON.stringify([cursor.after, cursor.offset, cursor.total, cursor.fingerprint])).toString(
    'base64url',
  );
}

const cursorSchema = z.tuple([
  z.array(z.union([z.string(), z.number(), z.null()])).max(MAX_SORT_KEYS + 1),
  z.int().min(0),
  z.int().min(0),
  z.string(),
]);

export function decodeCursor(text: string, fingerprint: string): SearchCursor {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw badQuery('cursor', 'not a cursor this matcher gave');
  }
  const parsed = cursorSchema.safeParse(raw);
  if (!parsed.success) throw badQuery('cursor', 'not a cursor this matcher gave');
  const [after, offset, total, madeFor] = parsed.data;
  if (madeFor !== fingerprint)
    throw badQuery('cursor', 'the cursor belongs to another search (filters or sort changed)');
  return { after, offset, total, fingerprint };
}

/** The sort values of a row, for the cursor of the page after it. */
export function sortValuesOf(job: Record<string, unknown>, sort: readonly JobSortKey[]): (string | number | null)[] {
  return sort.map(({ column }) => (job[column] ?? null) as string | number | null);
}

export type { JobQuery };
