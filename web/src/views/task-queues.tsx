/** Task queues with waiting jobs: size, age, requirements, boost, state (job administrators). */
import { useEffect, useState } from 'react';
import { api } from '../api.ts';
import type { Me } from '../app.tsx';

interface TaskQueue {
  id: number;
  vo: string;
  group: string;
  owner: string;
  waitingJobs: number;
  boost: number;
  paused: { by: string; reason: string } | null;
  oldestWaitingSince: string | null;
  requirements: {
    jobType: string;
    coresMin: number;
    coresMax: number;
    wallTimeSec: number;
    sites: string[];
    tags: string[];
  };
}

export function TaskQueues({ me }: { me: Me }) {
  const [rows, setRows] = useState<TaskQueue[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<{ taskQueues: TaskQueue[] }>('GET', '/api/task-queues').then(
      ({ body }) => setRows(body.taskQueues),
      (failure: Error) => setError(failure.message),
    );
  }, []);
  return (
    <section aria-labelledby="tq-title">
      <h1 id="tq-title">Task queues</h1>
      {error && (
        <p role="alert">
          {error}
          {me.properties.includes('JobAdministrator') ? '' : ' (task queues are shown to job administrators)'}
        </p>
      )}
      {rows && (
        <table>
          <thead>
            <tr>
              {[
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
              ].map((h) => (
                <th scope="col" key={h}>
                  {h}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((tq) => (
              <tr key={tq.id}>
                <td>{tq.id}</td>
                <td>{tq.paused ? `paused by ${tq.paused.by}: ${tq.paused.reason}` : 'active'}</td>
                <td>{tq.waitingJobs}</td>
                <td>{tq.oldestWaitingSince?.replace('T', ' ').slice(0, 19) ?? '–'}</td>
                <td>{tq.boost}</td>
                <td>{tq.owner || '(group)'}</td>
                <td>{tq.group}</td>
                <td>{tq.requirements.jobType}</td>
                <td>
                  {tq.requirements.coresMin === tq.requirements.coresMax
                    ? tq.requirements.coresMin
                    : `${tq.requirements.coresMin}–${tq.requirements.coresMax}`}
                </td>
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
