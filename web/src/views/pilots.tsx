/** Pilots: status, site, CE, node and jobs run (job administrators). */
import { useEffect, useState } from 'react';
import { api } from '../api.ts';
import type { Me } from '../app.tsx';

type PilotRow = Record<string, unknown> & { id?: string };

export function Pilots({ me }: { me: Me }) {
  const [rows, setRows] = useState<PilotRow[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<{ pilots: PilotRow[] }>('GET', '/api/pilots').then(
      ({ body }) => setRows(body.pilots),
      (failure: Error) => setError(failure.message),
    );
  }, []);
  const columns = [
    'id',
    'status',
    'statusReason',
    'vo',
    'site',
    'ce',
    'queue',
    'connected',
    'jobsMatched',
    'createdAt',
  ];
  return (
    <section aria-labelledby="pilots-title">
      <h1 id="pilots-title">Pilots</h1>
      {error && (
        <p role="alert">
          {error}
          {me.properties.includes('JobAdministrator') ? '' : ' (pilots are shown to job administrators)'}
        </p>
      )}
      {rows && (
        <table>
          <thead>
            <tr>
              {columns.map((c) => (
                <th scope="col" key={c}>
                  {c}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((row, index) => (
              <tr key={String(row.id ?? index)}>
                {columns.map((c) => (
                  <td key={c}>{row[c] === null || row[c] === undefined ? '–' : String(row[c])}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
