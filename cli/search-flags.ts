/**
 * Search filters and sort keys written on the command line, as the matcher's search body:
 * `--where 'priority>=3'`, `--where 'name~sim%'`, `--where 'status in Done,Failed'`,
 * `--where 'site=null'`, `--sort submittedAt:desc,id`. Columns and values are checked by the matcher
 * (it answers BAD_QUERY naming what is wrong); this only splits the text.
 */
import { PilothouseError } from '../shared/errors.ts';

export interface SearchFilter {
  parameter: string;
  operator: string;
  value?: string | number | null;
  values?: string[];
}

// Longest operators first, so that `>=` is not read as `>` followed by `=...`.
const SYMBOLS: [string, string][] = [
  ['!~', 'not like'],
  ['!=', 'neq'],
  ['>=', 'gte'],
  ['<=', 'lte'],
  ['~', 'like'],
  ['=', 'eq'],
  ['>', 'gt'],
  ['<', 'lt'],
];

export const WHERE_SYNTAX =
  "COLUMN OP VALUE with OP one of = != > >= < <= ~ (like, % and _ as wildcards) !~, or 'COLUMN in A,B' / 'COLUMN not in A,B'; VALUE null finds jobs without one";

function refused(expression: string, why: string): PilothouseError {
  return new PilothouseError('BAD_QUERY', `--where '${expression}': ${why} (${WHERE_SYNTAX})`, { field: 'where' });
}

export function parseWhere(expression: string): SearchFilter {
  const list = /^\s*([A-Za-z][A-Za-z0-9]*)\s+(not\s+in|in)\s+(.*)$/i.exec(expression);
  if (list) {
    const [, parameter, operator, rest] = list as unknown as [string, string, string, string];
    const values = rest
      .split(',')
      .map((value) => value.trim())
      .filter((value) => value !== '');
    return { parameter, operator: operator.toLowerCase().replace(/\s+/, ' '), values };
  }
  const column = /^\s*([A-Za-z][A-Za-z0-9]*)\s*/.exec(expression);
  if (!column) throw refused(expression, 'it does not start with a column name');
  const rest = expression.slice(column[0].length);
  const symbol = SYMBOLS.find(([text]) => rest.startsWith(text));
  if (!symbol) throw refused(expression, 'no operator after the column');
  const raw = rest.slice(symbol[0].length).trim();
  if (raw === '') throw refused(expression, 'no value after the operator');
  const value = raw === 'null' ? null : raw;
  return { parameter: column[1] as string, operator: symbol[1], value };
}

/** `submittedAt:desc,id` as sort keys (ascending unless `:desc`). */
export function parseSort(text: string): { parameter: string; direction: 'asc' | 'desc' }[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => {
      const [parameter, direction = 'asc'] = part.split(':') as [string, string?];
      if (direction !== 'asc' && direction !== 'desc') {
        throw new PilothouseError('BAD_QUERY', `--sort ${part}: the direction is asc or desc`, { field: 'sort' });
      }
      return { parameter, direction };
    });
}
