/**
 * The site mask — ban or allow a site with a reason — and the running limits per site and job type
 * from the scheduling policy. Service administrators change both; others see their change refused.
 */
import { TableHead } from './table-head.tsx';
import { useCallback, useEffect, useState } from 'react';
import { api, perform } from '../api.ts';
import type { Me } from '../app.tsx';
import { LiveBadge, useLiveRefresh } from '../live-refresh.tsx';
import { RunningLimits } from './running-limits.tsx';

interface SiteRow {
  site: string;
  status: string;
  reason: string;
  changedBy: string;
  changedAt: string;
}

export function Sites({ me }: { me: Me }) {
  const [rows, setRows] = useState<SiteRow[]>([]);
  const [message, setMessage] = useState<string | null>(null);
  const [site, setSite] = useState('');
  const [reason, setReason] = useState('');
  const load = useCallback(() => {
    api<{ sites: SiteRow[] }>('GET', '/api/sites').then(
      ({ body }) => setRows(body.sites),
      (failure: Error) => setMessage(failure.message),
    );
  }, []);
  useEffect(load, [load]);
  const live = useLiveRefresh(load);
  const change = (action: 'ban' | 'allow', name: string) =>
    perform(
      api('POST', `/api/sites/${encodeURIComponent(name)}/${action}`, {
        reason: reason || `${action} from the web monitor`,
      }),
      { done: `${name}: ${action === 'ban' ? 'banned' : 'allowed'}`, refusedPrefix: `${name}: ` },
      setMessage,
      load,
    );
  return (
    <section aria-labelledby="sites-title">
      <div className="title-row">
        <h1 id="sites-title">Sites</h1>
        <LiveBadge live={live} />
      </div>
      {message && (
        <p role="status" data-testid="site-message">
          {message}
        </p>
      )}
      <form
        className="inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          void change('ban', site);
        }}
      >
        <label>
          Site <input value={site} onChange={(event) => setSite(event.target.value)} required />
        </label>
        <label>
          Reason <input value={reason} onChange={(event) => setReason(event.target.value)} />
        </label>
        <button type="submit">Ban</button>
        {!me.properties.includes('ServiceAdministrator') && (
          <span className="muted"> (service administrators only)</span>
        )}
      </form>
      <table>
        <TableHead columns={['Site', 'Status', 'Reason', 'By', 'At', '']} />
        <tbody>
          {rows.map((row) => (
            <tr key={row.site}>
              <td>{row.site}</td>
              <td>{row.status}</td>
              <td>{row.reason}</td>
              <td>{row.changedBy}</td>
              <td>{row.changedAt.replace('T', ' ').slice(0, 19)}</td>
              <td>
                <button type="button" onClick={() => void change(row.status === 'Banned' ? 'allow' : 'ban', row.site)}>
                  {row.status === 'Banned' ? 'Allow' : 'Ban'}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <RunningLimits />
    </section>
  );
}
