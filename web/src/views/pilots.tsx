/**
 * Pilots (job administrators): status, site, CE, node and jobs run, newest first; filtered by status
 * and site, paged on the server, state in the URL (/ui/pilots?status=Running&site=X&page=2); live.
 */
import { TableHead } from './table-head.tsx';
import { useCallback, useEffect, useState } from 'react';
import { api } from '../api.ts';
import type { Me } from '../app.tsx';
import { shortTime } from '../format.ts';
import { LiveBadge, useLiveRefresh } from '../live-refresh.tsx';
import { setQuery, useLocation, ViewLink } from '../url-state.tsx';
import { PILOT_STATUSES } from '../../../shared/pilot/status.ts';

interface PilotRow {
  id: string;
  status: string;
  statusReason: string;
  vo: string;
  site: string;
  ce: string | null;
  queue: string | null;
  node: { hostname: string } | null;
  connected: boolean;
  jobsMatched: number;
  createdAt: string;
}

const PER_PAGE = 100;
const HEADERS = ['Pilot', 'Status', 'Reason', 'VO', 'Site', 'CE', 'Queue', 'Node', 'Connected', 'Jobs', 'Created'];

export function Pilots({ me }: { me: Me }) {
  const { query } = useLocation();
  const status = query.get('status') ?? '';
  const site = query.get('site') ?? '';
  const page = Math.max(1, Number(query.get('page')) || 1);
  const [answer, setAnswer] = useState<{ total: number; pilots: PilotRow[] } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [siteText, setSiteText] = useState(site);

  const load = useCallback(() => {
    const search = new URLSearchParams({ page: String(page), perPage: String(PER_PAGE) });
    if (status) search.set('status', status);
    if (site) search.set('site', site);
    return api<{ total: number; pilots: PilotRow[] }>('GET', `/api/pilots?${search}`).then(
      ({ body }) => {
        setAnswer(body);
        setError(null);
      },
      (failure: Error) => setError(failure.message),
    );
  }, [status, site, page]);
  useEffect(() => void load(), [load]);
  const live = useLiveRefresh(load);
  const total = answer?.total ?? 0;

  return (
    <section aria-labelledby="pilots-title">
      <div className="title-row">
        <h1 id="pilots-title">Pilots</h1>
        <LiveBadge live={live} />
      </div>
      <form
        className="inline-form"
        aria-label="Pilot filters"
        onSubmit={(event) => {
          event.preventDefault();
          setQuery({ site: siteText.trim() || null, page: null });
        }}
      >
        <label>
          Status{' '}
          <select value={status} onChange={(event) => setQuery({ status: event.target.value || null, page: null })}>
            <option value="">any</option>
            {PILOT_STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Site <input value={siteText} onChange={(event) => setSiteText(event.target.value)} />
        </label>
        <button type="submit">Apply</button>
      </form>
      {error && (
        <p role="alert">
          {error}
          {me.properties.includes('JobAdministrator') ? '' : ' (pilots are shown to job administrators)'}
        </p>
      )}
      {answer && (
        <>
          <p className="muted" data-testid="pilot-range">
            {total === 0
              ? 'no pilot'
              : `${(page - 1) * PER_PAGE + 1}–${(page - 1) * PER_PAGE + answer.pilots.length} of ${total}`}
          </p>
          <table data-testid="pilots">
            <TableHead columns={HEADERS} />
            <tbody>
              {answer.pilots.map((pilot) => (
                <tr key={pilot.id} data-pilot-id={pilot.id}>
                  <td>
                    <ViewLink to={`/ui/pilot?id=${encodeURIComponent(pilot.id)}`}>{pilot.id}</ViewLink>
                  </td>
                  <td>{pilot.status}</td>
                  <td>{pilot.statusReason || '–'}</td>
                  <td>{pilot.vo}</td>
                  <td>{pilot.site}</td>
                  <td>{pilot.ce ?? '–'}</td>
                  <td>{pilot.queue ?? '–'}</td>
                  <td>{pilot.node?.hostname ?? '–'}</td>
                  <td>{pilot.connected ? 'yes' : 'no'}</td>
                  <td>{pilot.jobsMatched}</td>
                  <td>{shortTime(pilot.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <nav aria-label="Pilot pages" className="inline-form">
            <button type="button" disabled={page <= 1} onClick={() => setQuery({ page: String(page - 1) })}>
              Previous
            </button>
            <button
              type="button"
              disabled={page * PER_PAGE >= total}
              onClick={() => setQuery({ page: String(page + 1) })}
            >
              Next
            </button>
          </nav>
        </>
      )}
    </section>
  );
}
