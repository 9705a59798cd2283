/**
 * The jobs of one page, with TanStack Table: sorting and paging are the server's (the table only
 * shows them); a header click sorts by that column, shift-click adds it as a further key. Rows are
 * selected with their checkbox; the header's checkbox selects the page.
 */
import { flexRender, getCoreRowModel, useReactTable, type ColumnDef } from '@tanstack/react-table';
import { useMemo } from 'react';
import type { JobColumn } from '../../../shared/job/job-search.ts';
import { ViewLink } from '../url-state.tsx';
import type { MonitorQuery } from './job-query.ts';

export type JobRow = Record<string, unknown> & { id: number };

const LABELS: Partial<Record<JobColumn, string>> = {
  id: 'Job',
  minorStatus: 'Minor status',
  applicationStatus: 'Application status',
  jobType: 'Type',
  jobGroup: 'Job group',
  exitCode: 'Exit',
  pilotId: 'Pilot',
  taskQueueId: 'TQ',
  submittedAt: 'Submitted',
  startedAt: 'Started',
  endedAt: 'Ended',
  lastUpdateAt: 'Last update',
  heartbeatAt: 'Heartbeat',
};
export const columnLabel = (column: JobColumn): string => LABELS[column] ?? column[0]?.toUpperCase() + column.slice(1);

function cell(column: JobColumn, value: unknown) {
  if (value === null || value === undefined) return <span className="muted">–</span>;
  if (column === 'status') return <span className={`chip status-${String(value).toLowerCase()}`}>{String(value)}</span>;
  if (column.endsWith('At') && typeof value === 'string')
    return <time dateTime={value}>{value.replace('T', ' ').slice(0, 19)}</time>;
  return String(value);
}

export function JobTable(props: {
  rows: JobRow[];
  columns: JobColumn[];
  sort: MonitorQuery['sort'];
  selected: Set<number>;
  onSelect(selected: Set<number>): void;
  onSort(sort: MonitorQuery['sort']): void;
}) {
  const { rows, columns, sort, selected, onSelect, onSort } = props;
  const definitions = useMemo<ColumnDef<JobRow>[]>(
    () =>
      columns.map((column) => ({
        id: column,
        header: columnLabel(column),
        accessorFn: (row) => row[column],
        cell: (info) =>
          column === 'id' ? (
            <ViewLink to={`/ui/job?id=${info.row.original.id}`}>{info.row.original.id}</ViewLink>
          ) : (
            cell(column, info.getValue())
          ),
      })),
    [columns],
  );
  const table = useReactTable({
    data: rows,
    columns: definitions,
    getCoreRowModel: getCoreRowModel(),
    manualSorting: true,
    manualPagination: true,
  });
  const allSelected = rows.length > 0 && rows.every((row) => selected.has(row.id));
  const toggle = (id: number) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    onSelect(next);
  };
  const sortBy = (column: JobColumn, add: boolean) => {
    const current = sort.find((key) => key.column === column);
    const direction: 'asc' | 'desc' = current?.direction === 'desc' ? 'asc' : 'desc';
    const others = add ? sort.filter((key) => key.column !== column) : [];
    onSort([...others, { column, direction }]);
  };
  return (
    <div className="table-wrap">
      <table className="jobs" aria-label="Jobs">
        <thead>
          {table.getHeaderGroups().map((group) => (
            <tr key={group.id}>
              <th scope="col" className="select">
                <input
                  type="checkbox"
                  aria-label="Select every job of this page"
                  checked={allSelected}
                  onChange={() => onSelect(allSelected ? new Set() : new Set(rows.map((row) => row.id)))}
                />
              </th>
              {group.headers.map((header) => {
                const column = header.column.id as JobColumn;
                const key = sort.find((k) => k.column === column);
                return (
                  <th
                    key={header.id}
                    scope="col"
                    aria-sort={key ? (key.direction === 'asc' ? 'ascending' : 'descending') : 'none'}
                  >
                    <button
                      type="button"
                      className="sort"
                      onClick={(event) => sortBy(column, event.shiftKey)}
                      title="Sort (shift: add as a further key)"
                    >
                      {flexRender(header.column.columnDef.header, header.getContext())}
                      {key && <span aria-hidden="true">{key.direction === 'asc' ? ' ▲' : ' ▼'}</span>}
                    </button>
                  </th>
                );
              })}
            </tr>
          ))}
        </thead>
        <tbody>
          {table.getRowModel().rows.map((row) => (
            <tr key={row.id} data-job-id={row.original.id} aria-selected={selected.has(row.original.id)}>
              <td className="select">
                <input
                  type="checkbox"
                  aria-label={`Select job ${row.original.id}`}
                  checked={selected.has(row.original.id)}
                  onChange={() => toggle(row.original.id)}
                />
              </td>
              {row.getVisibleCells().map((c) => (
                <td key={c.id} data-column={c.column.id}>
                  {flexRender(c.column.columnDef.cell, c.getContext())}
                </td>
              ))}
            </tr>
          ))}
          {rows.length === 0 && (
            <tr>
              <td colSpan={columns.length + 1} className="muted">
                No job matches.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}
