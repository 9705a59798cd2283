/** Which columns the table shows, and in which order (kept in the URL). */
import { JOB_COLUMN_NAMES, type JobColumn } from '../../../shared/job/job-search.ts';
import { setQuery } from '../url-state.tsx';
import { columnLabel } from './job-table.tsx';

export function ColumnChooser({ columns }: { columns: JobColumn[] }) {
  const save = (next: JobColumn[]) => setQuery({ cols: next.join(',') });
  const move = (index: number, by: number) => {
    const next = [...columns];
    const [column] = next.splice(index, 1);
    next.splice(Math.max(0, Math.min(next.length, index + by)), 0, column as JobColumn);
    save(next);
  };
  return (
    <details className="chooser">
      <summary>Columns</summary>
      <ol aria-label="Shown columns, in order">
        {columns.map((column, index) => (
          <li key={column}>
            <label>
              <input
                type="checkbox"
                checked
                onChange={() => save(columns.filter((c) => c !== column))}
                disabled={columns.length === 1}
              />{' '}
              {columnLabel(column)}
            </label>
            <button
              type="button"
              aria-label={`Move ${columnLabel(column)} left`}
              disabled={index === 0}
              onClick={() => move(index, -1)}
            >
              ←
            </button>
            <button
              type="button"
              aria-label={`Move ${columnLabel(column)} right`}
              disabled={index === columns.length - 1}
              onClick={() => move(index, 1)}
            >
              →
            </button>
          </li>
        ))}
      </ol>
      <p>Add:</p>
      <ul className="inline">
        {JOB_COLUMN_NAMES.filter((column) => !columns.includes(column)).map((column) => (
          <li key={column}>
            <label>
              <input type="checkbox" checked={false} onChange={() => save([...columns, column])} />{' '}
              {columnLabel(column)}
            </label>
          </li>
        ))}
      </ul>
    </details>
  );
}
