/** Task queues with waiting jobs: size, age, requirements, boost, state (job administrators); live. */
import { TableHead } from './table-head.tsx';
import { useCallback, useEffect, useState } from 'react';
import { api } from '../api.ts';
import type { Me } from '../app.tsx';
import { LiveBadge, useLiveRefresh } from '../live-refresh.tsx';
import { ViewLink } from '../url-state.tsx';
import { shortTime } from '../format.ts';
import { cores, type TaskQueue } from './task-queue-model.ts';

const HEADERS = [
  'TQ',
  'State',
  'Waiting',
  'Oldest',
  'Boost',
  'Owner',
  'Group',
  'Type',
  'Cores',
  'Wall time (s)',
  'Sites',
  'Tags',
];

export function TaskQueues({ me }: { me: Me }) {
  const [rows, setRows] = useState<TaskQueue[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(
    () =>
      api<{ taskQueues: TaskQueue[] }>('GET', '/api/task-queues').then(
        ({ body }) => {
          setRows(body.taskQueues);
          setError(null);
        },
        (failure: Error) => setError(failure.message),
      ),
    [],
  );
  useEffect(() => void load(), [load]);
  const live = useLiveRefresh(load);
  return (
    <section aria-labelledby="tq-title">
      <div className="title-row">
        <h1 id="tq-title">Task queues</h1>
        <LiveBadge live={live} />
      </div>
      {error && (
        <p role="alert">
          {error}
          {me.properties.includes('JobAdministrator') ? '' : ' (task queues are shown to job administrators)'}
        </p>
      )}
      {rows && rows.length === 0 && <p>No job is waiting.</p>}
      {rows && rows.length > 0 && (
        <table data-testid="task-queues">
          <TableHead columns={HEADERS} />
          <tbody>
            {rows.map((tq) => (
              <tr key={tq.id} data-tq-id={tq.id}>
                <td>
                  <ViewLink to={`/ui/task-queue?id=${tq.id}`}>{tq.id}</ViewLink>
                </td>
                <td>{tq.paused ? `paused by ${tq.paused.by}: ${tq.paused.reason}` : 'active'}</td>
                <td>{tq.waitingJobs}</td>
                <td>{shortTime(tq.oldestWaitingSince)}</td>
                <td>{tq.boost}</td>
                <td>{tq.owner || '(group)'}</td>
                <td>{tq.group}</td>
                <td>{tq.requirements.jobType}</td>
                <td>{cores(tq.requirements)}</td>
                <td>{tq.requirements.wallTimeSec}</td>
                <td>{tq.requirements.sites.join(', ') || 'any'}</td>
                <td>{tq.requirements.tags.join(', ')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
