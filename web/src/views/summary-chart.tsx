/**
 * Counts of the filtered jobs by a chosen column, as horizontal bars (the ten largest groups); a bar
 * is a button that adds "column = value" to the filters.
 */
import { useEffect, useState } from 'react';
import { GROUPABLE_JOB_COLUMNS, type JobColumn } from '../../../shared/job/job-search.ts';
import { api } from '../api.ts';
import { columnLabel } from './job-table.tsx';

interface Group {
  value: string | null;
  count: number;
}

const MAX_BARS = 10;

export function SummaryChart(props: {
  by: JobColumn;
  search: Record<string, unknown>[];
  version: number;
  onBy(by: string): void;
  onPick(value: string | null): void;
}) {
  const { by, search, version, onBy, onPick } = props;
  const [groups, setGroups] = useState<Group[]>([]);
  const [total, setTotal] = useState(0);
  const searchKey = JSON.stringify(search);
  useEffect(() => {
    api<{ groups: Record<string, unknown>[]; total: number }>('POST', '/api/jobs/summary', {
      grouping: [by],
      search,
    }).then(
      ({ body }) => {
        setGroups(
          body.groups
            .slice(0, MAX_BARS)
            .map((group) => ({ value: group[by] === null ? null : String(group[by]), count: Number(group.count) })),
        );
        setTotal(body.total);
      },
      () => setGroups([]),
    );
  }, [by, searchKey, version]);
  const largest = Math.max(1, ...groups.map((group) => group.count));
  return (
    <figure className="summary" aria-labelledby="summary-caption">
      <figcaption id="summary-caption">
        <label>
          Jobs by{' '}
          <select value={by} onChange={(event) => onBy(event.target.value)}>
            {GROUPABLE_JOB_COLUMNS.map((column) => (
              <option key={column} value={column}>
                {columnLabel(column)}
              </option>
            ))}
          </select>
        </label>{' '}
        <span className="muted">{total} in all</span>
      </figcaption>
      <ul className="bars" data-testid="summary">
        {groups.map((group) => (
          <li key={String(group.value)}>
            {/* The name read out holds the visible text (WCAG 2.5.3): "Filter Status = Done 31 jobs". */}
            <button type="button" onClick={() => onPick(group.value)}>
              <span className="sr-only">Filter {columnLabel(by)} = </span>
              <span className="bar-label">{group.value ?? '(none)'}</span>
              <span className="bar" style={{ width: `${(group.count / largest) * 100}%` }} />
              <span className="bar-count">
                {group.count}
                <span className="sr-only"> jobs</span>
              </span>
            </button>
          </li>
        ))}
      </ul>
    </figure>
  );
}
