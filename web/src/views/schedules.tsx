/**
 * Recurring schedules the user may see (`GET /api/schedules`): expression, zone, policies, state, the
 * next slot and the runs so far; pause or resume one; and, for a chosen schedule, what each slot
 * became (`GET /api/schedules/{id}/runs`) with links to the runs' jobs. Live like the other views.
 */
import { TableHead } from './table-head.tsx';
import { useCallback, useEffect, useState } from 'react';
import { api, perform } from '../api.ts';
import { LiveBadge, useLiveRefresh } from '../live-refresh.tsx';
import { useLocation, ViewLink } from '../url-state.tsx';
import { shortTime } from '../format.ts';
import type { ScheduleRunView, ScheduleView } from '../../../shared/schedule/schedule.ts';

const HEADERS = [
  'Schedule',
  'Name',
  'State',
  'Cron',
  'Time zone',
  'Overlap',
  'Catch-up',
  'Runs',
  'Next slot (UTC)',
  'Owner',
  '',
];
const RUN_HEADERS = ['Slot (UTC)', 'Outcome', 'Jobs', 'Missed slots', 'Why'];

export function Schedules() {
  const { query } = useLocation();
  const chosen = Number(query.get('id') ?? NaN);
  const [rows, setRows] = useState<ScheduleView[] | null>(null);
  const [runs, setRuns] = useState<ScheduleRunView[] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const load = useCallback(async () => {
    try {
      const { body } = await api<{ schedules: ScheduleView[] }>('GET', '/api/schedules');
      setRows(body.schedules);
      if (Number.isInteger(chosen)) {
        setRuns((await api<{ runs: ScheduleRunView[] }>('GET', `/api/schedules/${chosen}/runs?limit=50`)).body.runs);
      } else setRuns(null);
    } catch (failure) {
      setMessage((failure as Error).message);
    }
  }, [chosen]);
  useEffect(() => void load(), [load]);
  const live = useLiveRefresh(load);

  const change = (schedule: ScheduleView, action: 'pause' | 'resume') =>
    perform(
      api('POST', `/api/schedules/${schedule.id}/${action}`),
      {
        done: `schedule ${schedule.id} ${action === 'pause' ? 'paused' : 'resumed'}`,
        refusedPrefix: `schedule ${schedule.id}: `,
      },
      setMessage,
      load,
    );

  return (
    <section aria-labelledby="schedules-title">
      <div className="title-row">
        <h1 id="schedules-title">Schedules</h1>
        <LiveBadge live={live} />
      </div>
      {message && (
        <p role="status" data-testid="schedule-message">
          {message}
        </p>
      )}
      {rows && rows.length === 0 && <p>No schedule. Make one with pilothouse schedule add FILE --cron EXPR.</p>}
      {rows && rows.length > 0 && (
        <div className="table-wrap">
          <table data-testid="schedules">
            <TableHead columns={HEADERS} />
            <tbody>
              {rows.map((schedule) => (
                <tr key={schedule.id} data-schedule-id={schedule.id}>
                  <td>
                    <ViewLink to={`/ui/schedules?id=${schedule.id}`}>{schedule.id}</ViewLink>
                  </td>
                  <td>{schedule.name ?? '–'}</td>
                  <td data-column="state">{schedule.state}</td>
                  <td>
                    <code>{schedule.cron}</code>
                  </td>
                  <td>{schedule.timeZone}</td>
                  <td>{schedule.overlap}</td>
                  <td>{schedule.catchUp}</td>
                  <td>{schedule.runs}</td>
                  <td>{shortTime(schedule.nextFireAt)}</td>
                  <td>{schedule.owner}</td>
                  <td>
                    {schedule.state !== 'ended' && (
                      <button
                        type="button"
                        onClick={() => void change(schedule, schedule.state === 'paused' ? 'resume' : 'pause')}
                      >
                        {schedule.state === 'paused' ? 'Resume' : 'Pause'} schedule {schedule.id}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {runs && (
        <section aria-labelledby="runs-title">
          <h2 id="runs-title">Runs of schedule {chosen}</h2>
          {runs.length === 0 && <p>No slot decided yet.</p>}
          {runs.length > 0 && (
            <table data-testid="schedule-runs">
              <TableHead columns={RUN_HEADERS} />
              <tbody>
                {runs.map((run) => (
                  <tr key={run.slotAt}>
                    <td>{shortTime(run.slotAt)}</td>
                    <td>{run.outcome}</td>
                    <td>
                      {run.jobs.map((job) => (
                        <span key={job.id}>
                          <ViewLink to={`/ui/job?id=${job.id}`}>{job.id}</ViewLink> {job.status}{' '}
                        </span>
                      ))}
                    </td>
                    <td>{run.missedSlots > 0 ? run.missedSlots : ''}</td>
                    <td>{run.reason ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      )}
    </section>
  );
}
