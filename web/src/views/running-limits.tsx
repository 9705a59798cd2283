/**
 * Running limits of the scheduling policy (`GET /api/policy`): at most N running jobs of a job type at
 * a site. A service administrator sets or removes one (`PUT/DELETE /api/policy/running-limits/...`);
 * anyone else is shown the matcher's refusal.
 */
import { TableHead } from './table-head.tsx';
import { useCallback, useEffect, useState } from 'react';
import { api, perform } from '../api.ts';

interface RunningLimit {
  site: string;
  jobType: string;
  maxRunning: number;
}

interface PolicyAnswer {
  version: number;
  policy: { runningLimits: RunningLimit[] };
}

const limitPath = (site: string, jobType: string) =>
  `/api/policy/running-limits/${encodeURIComponent(site)}/${encodeURIComponent(jobType)}`;

export function RunningLimits() {
  const [limits, setLimits] = useState<RunningLimit[] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [site, setSite] = useState('');
  const [jobType, setJobType] = useState('');
  const [maxRunning, setMaxRunning] = useState('');
  const load = useCallback(
    () =>
      api<PolicyAnswer>('GET', '/api/policy').then(
        ({ body }) => setLimits(body.policy.runningLimits),
        (failure: Error) => setMessage(failure.message),
      ),
    [],
  );
  useEffect(() => void load(), [load]);

  const change = (method: 'PUT' | 'DELETE', limit: Omit<RunningLimit, 'maxRunning'>, max?: number) => {
    const name = `${limit.site} / ${limit.jobType}`;
    return perform(
      api(method, limitPath(limit.site, limit.jobType), method === 'PUT' ? { maxRunning: max } : undefined),
      { done: method === 'PUT' ? `${name}: at most ${max} running` : `${name}: no limit`, refusedPrefix: `${name}: ` },
      setMessage,
      load,
    );
  };

  return (
    <section aria-labelledby="limits-title">
      <h2 id="limits-title">Running limits</h2>
      {message && (
        <p role="status" data-testid="limit-message">
          {message}
        </p>
      )}
      <form
        className="inline-form"
        aria-label="Set a running limit"
        onSubmit={(event) => {
          event.preventDefault();
          void change('PUT', { site, jobType }, Number(maxRunning));
        }}
      >
        <label>
          Limit site <input value={site} onChange={(event) => setSite(event.target.value)} required />
        </label>
        <label>
          Job type <input value={jobType} onChange={(event) => setJobType(event.target.value)} required />
        </label>
        <label>
          Max running{' '}
          <input
            type="number"
            min={0}
            step={1}
            required
            value={maxRunning}
            onChange={(event) => setMaxRunning(event.target.value)}
          />
        </label>
        <button type="submit">Set limit</button>
      </form>
      {limits && limits.length === 0 && <p>No running limit is set.</p>}
      {limits && limits.length > 0 && (
        <table data-testid="running-limits">
          <TableHead columns={['Site', 'Job type', 'Max running', '']} />
          <tbody>
            {limits.map((limit) => (
              <tr key={`${limit.site}/${limit.jobType}`}>
                <td>{limit.site}</td>
                <td>{limit.jobType}</td>
                <td>{limit.maxRunning}</td>
                <td>
                  <button
                    type="button"
                    aria-label={`Remove the limit of ${limit.site} / ${limit.jobType}`}
                    onClick={() => void change('DELETE', limit)}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
