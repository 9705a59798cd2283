/**
 * The filters of the Job Monitor: each a column, an operator its type allows, and a value (for text
 * and status columns, values suggested from the summary route). Filters show as chips to remove.
 */
import { useEffect, useState } from 'react';
import {
  GROUPABLE_JOB_COLUMNS,
  JOB_COLUMNS,
  JOB_COLUMN_NAMES,
  type JobColumn,
} from '../../../shared/job/job-search.ts';
import { api } from '../api.ts';
import { setQuery, useLocation } from '../url-state.tsx';
import { filterToUrl, OPERATORS_BY_TYPE, type Filter } from './job-query.ts';
import { columnLabel } from './job-table.tsx';

const OPERATOR_LABELS: Record<string, string> = {
  eq: '=',
  neq: '≠',
  gt: '>',
  gte: '≥',
  lt: '<',
  lte: '≤',
  like: 'like',
  'not like': 'not like',
  in: 'in',
  'not in': 'not in',
  'last hours': 'in the last (hours)',
};

function useSuggestions(column: JobColumn): string[] {
  const [values, setValues] = useState<string[]>([]);
  useEffect(() => {
    if (!GROUPABLE_JOB_COLUMNS.includes(column)) {
      setValues([]);
      return;
    }
    api<{ groups: Record<string, unknown>[] }>('POST', '/api/jobs/summary', { grouping: [column] }).then(
      ({ body }) => setValues(body.groups.slice(0, 50).map((group) => String(group[column] ?? 'null'))),
      () => setValues([]),
    );
  }, [column]);
  return values;
}

export function FilterBar({ filters }: { filters: Filter[] }) {
  const { query } = useLocation();
  const [column, setColumn] = useState<JobColumn>('status');
  const operators = OPERATORS_BY_TYPE[JOB_COLUMNS[column]];
  const [operator, setOperator] = useState<string>(operators[0] as string);
  const [value, setValue] = useState('');
  const suggestions = useSuggestions(column);
  useEffect(() => {
    if (!operators.includes(operator)) setOperator(operators[0] as string);
  }, [column]);

  const remove = (index: number) => setQuery({ f: query.getAll('f').filter((_, i) => i !== index), page: null });
  return (
    <div className="filters">
      <ul className="chips" aria-label="Filters">
        {filters.map((filter, index) => (
          <li key={filterToUrl(filter) + index}>
            <span>
              {columnLabel(filter.column)} {OPERATOR_LABELS[filter.operator] ?? filter.operator} {filter.value}
            </span>
            <button
              type="button"
              aria-label={`Remove filter ${columnLabel(filter.column)} ${filter.operator} ${filter.value}`}
              onClick={() => remove(index)}
            >
              ×
            </button>
          </li>
        ))}
      </ul>
      <form
        className="add-filter"
        aria-label="Add a filter"
        onSubmit={(event) => {
          event.preventDefault();
          if (value.trim() === '') return;
          setQuery({ f: [...query.getAll('f'), filterToUrl({ column, operator, value: value.trim() })], page: null });
          setValue('');
        }}
      >
        <label>
          <span className="sr-only">Column</span>
          <select
            value={column}
            onChange={(event) => setColumn(event.target.value as JobColumn)}
            aria-label="Filter column"
          >
            {JOB_COLUMN_NAMES.map((name) => (
              <option key={name} value={name}>
                {columnLabel(name)}
              </option>
            ))}
          </select>
        </label>
        <select value={operator} onChange={(event) => setOperator(event.target.value)} aria-label="Filter operator">
          {operators.map((name) => (
            <option key={name} value={name}>
              {OPERATOR_LABELS[name]}
            </option>
          ))}
        </select>
        <input
          aria-label="Filter value"
          list="filter-values"
          value={value}
          placeholder={
            operator === 'in' || operator === 'not in' ? 'a,b,c' : operator === 'last hours' ? '24' : 'value'
          }
          onChange={(event) => setValue(event.target.value)}
        />
        <datalist id="filter-values">
          {suggestions.map((suggestion) => (
            <option key={suggestion} value={suggestion} />
          ))}
        </datalist>
        <button type="submit">Add filter</button>
      </form>
    </div>
  );
}
