/**
 * The Job Monitor: the caller's jobs (their VO's for job administrators) with chosen, ordered and
 * sorted columns, typed filters, server-side paging, a summary chart whose bars filter the table,
 * selection with bulk kill / reschedule / delete reporting each job's result, and live updates.
 * Everything it shows is in the URL.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { api, ApiError } from '../api.ts';
import type { Me } from '../app.tsx';
import { LiveBadge, useLiveRefresh } from '../live-refresh.tsx';
import { setQuery, useLocation } from '../url-state.tsx';
import { ColumnChooser } from './column-chooser.tsx';
import { FilterBar } from './filter-bar.tsx';
import { filterToApi, PAGE_SIZES, readQuery, sortToUrl } from './job-query.ts';
import { JobTable, type JobRow } from './job-table.tsx';
import { SummaryChart } from './summary-chart.tsx';

interface SearchAnswer {
  total: number;
  jobs: JobRow[];
}

interface BulkResult {
  jobId: number;
  ok: boolean;
  error?: { code: string; message: string };
  [key: string]: unknown;
}

const BULK = [
  ['kill', 'Kill'],
  ['reschedule', 'Reschedule'],
  ['delete', 'Delete'],
] as const;

export function JobMonitor({ me }: { me: Me }) {
  const { query } = useLocation();
  const monitor = useMemo(() => readQuery(query), [query.toString()]);
  const [answer, setAnswer] = useState<SearchAnswer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [results, setResults] = useState<{ operation: string; results: BulkResult[] } | null>(null);
  const [summaryVersion, setSummaryVersion] = useState(0);
  const searchBody = useMemo(
    () => ({
      parameters: [...new Set(['id', ...monitor.columns])],
      search: monitor.filters.map(filterToApi),
      sort: monitor.sort.map((key) => ({ parameter: key.column, direction: key.direction })),
      page: monitor.page,
      perPage: monitor.perPage,
    }),
    [monitor],
  );

  // Answers can come back out of order (a live reload racing a new sort): only the latest request's counts.
  const latest = useRef(0);
  const load = useCallback(async () => {
    const request = (latest.current += 1);
    try {
      const { body } = await api<SearchAnswer>('POST', '/api/jobs/search', searchBody);
      if (request !== latest.current) return;
      setAnswer(body);
      setError(null);
    } catch (failure) {
      if (failure instanceof ApiError && failure.code === 'PAGE_OUT_OF_RANGE') setQuery({ page: null }, true);
      else setError((failure as Error).message);
    }
  }, [searchBody]);

  useEffect(() => {
    void load();
  }, [load]);

  // Live: any change to a job we may see reloads the page shown (at most every half second), with the
  // query shown then, not the one of when the stream was opened.
  const live = useLiveRefresh(() => {
    void load();
    setSummaryVersion((v) => v + 1);
  }, null);

  const runBulk = async (operation: string) => {
    const ids = [...selected];
    if (ids.length === 0) return;
    try {
      const { body } = await api<{ results: BulkResult[] }>('POST', `/api/jobs/${operation}`, { ids });
      setResults({ operation, results: body.results });
      setSelected(new Set());
      void load();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const total = answer?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / monitor.perPage));
  const first = total === 0 ? 0 : (monitor.page - 1) * monitor.perPage + 1;
  const last = Math.min(total, monitor.page * monitor.perPage);

  return (
    <section aria-labelledby="jobs-title">
      <div className="title-row">
        <h1 id="jobs-title">Jobs</h1>
        <LiveBadge live={live} />
        <span className="muted">
          {me.properties.includes('JobAdministrator') || me.properties.includes('ServiceAdministrator')
            ? `jobs of ${me.properties.includes('ServiceAdministrator') ? 'every VO' : `VO ${me.vo}`}`
            : 'your jobs'}
        </span>
      </div>
      <FilterBar filters={monitor.filters} />
      <SummaryChart
        by={monitor.summaryBy}
        search={searchBody.search}
        version={summaryVersion}
        onBy={(by) => setQuery({ by })}
        onPick={(value) =>
          setQuery({
            f: [...query.getAll('f'), `${monitor.summaryBy}|eq|${value === null ? 'null' : value}`],
            page: null,
          })
        }
      />
      <div className="toolbar" role="toolbar" aria-label="Selected jobs">
        <span>{selected.size} selected</span>
        {BULK.map(([operation, label]) => (
          <button key={operation} type="button" disabled={selected.size === 0} onClick={() => void runBulk(operation)}>
            {label}
          </button>
        ))}
        <ColumnChooser columns={monitor.columns} />
      </div>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {results && (
        <div role="status" className="results" data-testid="bulk-results">
          <strong>
            {results.operation}: {results.results.filter((r) => r.ok).length} done,{' '}
            {results.results.filter((r) => !r.ok).length} refused
          </strong>
          <ul>
            {results.results.map((result) => (
              <li key={result.jobId}>
                job {result.jobId}: {result.ok ? 'ok' : `${result.error?.message} (${result.error?.code})`}
              </li>
            ))}
          </ul>
          <button type="button" onClick={() => setResults(null)}>
            Dismiss
          </button>
        </div>
      )}
      <JobTable
        rows={answer?.jobs ?? []}
        columns={monitor.columns}
        sort={monitor.sort}
        selected={selected}
        onSelect={setSelected}
        onSort={(sort) => setQuery({ sort: sortToUrl(sort), page: null })}
      />
      <nav className="pager" aria-label="Pages">
        <span data-testid="range">
          {first}–{last} of {total}
        </span>
        <button type="button" disabled={monitor.page <= 1} onClick={() => setQuery({ page: String(monitor.page - 1) })}>
          Previous
        </button>
        <span>
          page {monitor.page} of {pages}
        </span>
        <button
          type="button"
          disabled={monitor.page >= pages}
          onClick={() => setQuery({ page: String(monitor.page + 1) })}
        >
          Next
        </button>
        <label>
          per page{' '}
          <select value={monitor.perPage} onChange={(event) => setQuery({ per: event.target.value, page: null })}>
            {PAGE_SIZES.map((size) => (
              <option key={size} value={size}>
                {size}
              </option>
            ))}
          </select>
        </label>
      </nav>
    </section>
  );
}
