/**
 * One pilot: where it runs (site, CE, queue, batch job), its node, its status and their history, the
 * jobs it ran, its own shipped log and the wrapper's output as its site director fetched it from the
 * CE. Job administrators of its VO drain it here. Updated live.
 */
import { TableHead } from './table-head.tsx';
import { useCallback, useEffect, useState } from 'react';
import { api, perform } from '../api.ts';
import { LiveBadge, useLiveRefresh } from '../live-refresh.tsx';
import { useLocation, ViewLink } from '../url-state.tsx';
import { shortTime } from '../format.ts';
import { formatLogLine } from '../../../shared/log-line.ts';

interface PilotDetail {
  id: string;
  vo: string;
  site: string;
  ce: string | null;
  queue: string | null;
  status: string;
  statusReason: string;
  createdAt: string;
  node: (Record<string, unknown> & { hostname: string; cores: number; memoryMB: number }) | null;
  pilotVersion: string | null;
  connected: boolean;
  lastSeenAt: string | null;
  jobsMatched: number;
  director: string | null;
  backend: string | null;
  backendRef: string | null;
  exitCode: number | null;
  drain: { requestedBy: string; reason: string } | null;
  exit: { reason: string; jobsRun: number | null; jobsFailed: number | null } | null;
  lastHeartbeat: { at: string; load1: number; diskFreeMB: number | null } | null;
  logLines: number;
  history: { at: string; status: string; reason: string; source: string }[];
  jobs: { id: number; attempt: number; name: string; status: string; minorStatus: string; owner: string }[];
}

/** Lines of the pilot's own log shown: its latest ones. */
const LOG_TAIL_LINES = 300;

export function PilotPage() {
  const { query } = useLocation();
  const id = query.get('id') ?? '';
  const [pilot, setPilot] = useState<PilotDetail | null>(null);
  const [log, setLog] = useState<string[]>([]);
  const [wrapper, setWrapper] = useState<{ stdout: string; stderr: string } | string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const path = `/api/pilots/${encodeURIComponent(id)}`;

  const load = useCallback(async () => {
    try {
      const { body } = await api<PilotDetail>('GET', path);
      const after = Math.max(0, body.logLines - LOG_TAIL_LINES);
      const [{ body: logs }, output] = await Promise.all([
        api<{ lines: { line: string }[] }>('GET', `${path}/logs?after=${after}&limit=${LOG_TAIL_LINES}`),
        api<{ stdout: string; stderr: string }>('GET', `${path}/output`).then(
          (answer) => answer.body,
          (failure: Error) => failure.message,
        ),
      ]);
      setPilot(body);
      setLog(logs.lines.map((entry) => formatLogLine(entry.line, { timeOfDay: true })));
      setWrapper(output);
      setError(null);
    } catch (failure) {
      setError((failure as Error).message);
    }
  }, [path]);
  useEffect(() => void load(), [load]);
  const live = useLiveRefresh(load);

  const drain = () =>
    perform(
      api('POST', `${path}/drain`, { reason: 'drained from the web monitor' }),
      { done: 'draining: it takes no more work and leaves once its jobs end', refusedPrefix: 'refused: ' },
      setMessage,
      load,
    );

  if (error) return <p role="alert">{error}</p>;
  if (!pilot) return <p>Loading pilot {id}…</p>;
  return (
    <article aria-labelledby="pilot-title">
      <div className="title-row">
        <h1 id="pilot-title">
          Pilot {pilot.id}{' '}
          <span className="chip" data-testid="pilot-status">
            {pilot.status}
          </span>
        </h1>
        <LiveBadge live={live} />
      </div>
      {message && (
        <p role="status" data-testid="pilot-message">
          {message}
        </p>
      )}
      <dl className="facts">
        <dt>Status reason</dt>
        <dd>{pilot.statusReason || '–'}</dd>
        <dt>Where</dt>
        <dd>
          {pilot.site}
          {pilot.ce && ` / ${pilot.ce}`}
          {pilot.queue && ` / ${pilot.queue}`} ({pilot.vo})
        </dd>
        <dt>Submitted by</dt>
        <dd>
          {pilot.director ? `${pilot.director} (${pilot.backend ?? '?'} ${pilot.backendRef ?? ''})` : 'started by hand'}
        </dd>
        <dt>Node</dt>
        <dd data-testid="pilot-node">
          {pilot.node
            ? `${pilot.node.hostname}: ${pilot.node.cores} cores, ${pilot.node.memoryMB} MB`
            : 'not connected yet'}
        </dd>
        <dt>Connected</dt>
        <dd>
          {pilot.connected ? 'yes' : 'no'}, last seen {shortTime(pilot.lastSeenAt)}
          {pilot.lastHeartbeat && `, load ${pilot.lastHeartbeat.load1}`}
        </dd>
        <dt>Jobs matched</dt>
        <dd data-testid="pilot-jobs-matched">{pilot.jobsMatched}</dd>
        <dt>Drain</dt>
        <dd>{pilot.drain ? `requested by ${pilot.drain.requestedBy}: ${pilot.drain.reason}` : 'no'}</dd>
        <dt>Exit</dt>
        <dd>
          {pilot.exit ? `${pilot.exit.reason} (${pilot.exit.jobsRun ?? '?'} run)` : '–'}
          {pilot.exitCode !== null && `, exit code ${pilot.exitCode}`}
        </dd>
        <dt>Version</dt>
        <dd>{pilot.pilotVersion ?? '–'}</dd>
      </dl>
      {pilot.connected && !pilot.drain && (
        <p>
          <button type="button" onClick={() => void drain()}>
            Drain
          </button>{' '}
          <span className="muted">job administrators of {pilot.vo} only</span>
        </p>
      )}

      <section aria-labelledby="pilot-jobs-title">
        <h2 id="pilot-jobs-title">Jobs</h2>
        <table data-testid="pilot-jobs">
          <TableHead columns={['Job', 'Attempt', 'Name', 'Status', 'Minor status', 'Owner']} />
          <tbody>
            {pilot.jobs.map((job) => (
              <tr key={`${job.id}.${job.attempt}`}>
                <td>
                  <ViewLink to={`/ui/job?id=${job.id}`}>{job.id}</ViewLink>
                </td>
                <td>{job.attempt}</td>
                <td>{job.name}</td>
                <td>{job.status}</td>
                <td>{job.minorStatus}</td>
                <td>{job.owner}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>

      <section aria-labelledby="pilot-history-title">
        <h2 id="pilot-history-title">Status history</h2>
        <table>
          <TableHead columns={['At', 'Status', 'Reason', 'Source']} />
          <tbody>
            {pilot.history.map((row, index) => (
              <tr key={index}>
                <td>
                  <time dateTime={row.at}>{shortTime(row.at)}</time>
                </td>
                <td>{row.status}</td>
                <td>{row.reason}</td>
                <td>{row.source}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>

      <section aria-labelledby="pilot-log-title">
        <h2 id="pilot-log-title">Its log (last {LOG_TAIL_LINES} lines)</h2>
        <pre data-testid="pilot-log" tabIndex={0}>
          {log.length > 0 ? log.join('\n') : '(nothing shipped yet)'}
        </pre>
        <h2>Wrapper output from the CE</h2>
        {typeof wrapper === 'string' || wrapper === null ? (
          <p className="muted">{wrapper}</p>
        ) : (
          <>
            <h3>stdout</h3>
            <pre tabIndex={0}>{wrapper.stdout || '(empty)'}</pre>
            <h3>stderr</h3>
            <pre tabIndex={0}>{wrapper.stderr || '(empty)'}</pre>
          </>
        )}
      </section>
    </article>
  );
}
