/**
 * One job: its status, minor and application status, where it ran (site, CE, pilot), its
 * requirements, its status history, the tail of std.out/std.err, the output sandbox, and — while it
 * waits — why it is not running (explain). Updated live.
 */
import { TableHead } from './table-head.tsx';
import { useCallback, useEffect, useState } from 'react';
import { api, download } from '../api.ts';
import { watchJobs } from '../live.ts';
import { useLocation, ViewLink } from '../url-state.tsx';
import { shortTime } from '../format.ts';
import type { JobWithHistory } from '../../../shared/job/model.ts';

/** The job as GET /api/jobs/{id} answers it: the model the matcher serves, with its history. */
type Job = JobWithHistory;

interface Logs {
  outputTail: { stdout: string; stderr: string } | null;
}

interface Verdict {
  target: { kind: string; pilotId?: string; site: string };
  matches: boolean;
  checks: { requirement: string; pass: boolean; reason: string }[];
}

export function JobPage() {
  const { query } = useLocation();
  const id = Number(query.get('id'));
  const [job, setJob] = useState<Job | null>(null);
  const [logs, setLogs] = useState<Logs | null>(null);
  const [why, setWhy] = useState<{ note?: string; verdicts: Verdict[] } | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const [{ body: loaded }, { body: tail }] = await Promise.all([
        api<Job>('GET', `/api/jobs/${id}`),
        api<Logs>('GET', `/api/jobs/${id}/logs`),
      ]);
      setJob(loaded);
      setLogs(tail);
      if (['Waiting', 'Received', 'Checking'].includes(loaded.status)) {
        setWhy((await api<{ note?: string; verdicts: Verdict[] }>('POST', `/api/jobs/${id}/explain`, {})).body);
      } else setWhy(null);
      setError(null);
    } catch (failure) {
      setError((failure as Error).message);
    }
  }, [id]);

  useEffect(() => {
    void load();
  }, [load]);
  useEffect(
    () =>
      watchJobs(
        (jobs) => jobs.some((changed) => changed.id === id) && void load(),
        () => {},
      ),
    [id, load],
  );

  if (error) return <p role="alert">{error}</p>;
  if (!job) return <p>Loading job {id}…</p>;
  return (
    <article aria-labelledby="job-title">
      <h1 id="job-title">
        Job {job.id}{' '}
        <span className={`chip status-${job.status.toLowerCase()}`} data-testid="job-status">
          {job.status}
        </span>
      </h1>
      <dl className="facts">
        <dt>Name</dt>
        <dd>{job.name}</dd>
        <dt>Minor status</dt>
        <dd>{job.minorStatus || '–'}</dd>
        <dt>Application status</dt>
        <dd>{job.applicationStatus || '–'}</dd>
        <dt>Owner</dt>
        <dd>
          {job.owner} ({job.vo} / {job.group})
        </dd>
        <dt>Type</dt>
        <dd>{job.jobType}</dd>
        <dt>Attempt</dt>
        <dd>{job.attempt}</dd>
        <dt>Ran at</dt>
        <dd>
          {job.site ?? '–'} {job.ce && `/ ${job.ce}`} {job.pilotId && `(pilot ${job.pilotId})`}
        </dd>
        <dt>Exit code</dt>
        <dd>{job.exitCode ?? '–'}</dd>
        <dt>Task queue</dt>
        <dd>{job.taskQueueId ?? '–'}</dd>
        {job.scheduleId !== undefined && (
          <>
            <dt>Schedule</dt>
            <dd>
              <ViewLink to={`/ui/schedules?id=${job.scheduleId}`}>schedule {job.scheduleId}</ViewLink>, slot{' '}
              {shortTime(job.scheduleSlot ?? null)}
            </dd>
          </>
        )}
      </dl>
      {job.outputSandbox && (
        <p>
          <button
            type="button"
            onClick={() => void download(`/api/jobs/${job.id}/output`, `job-${job.id}-output.tar.gz`)}
          >
            Download the output sandbox
          </button>
        </p>
      )}
      {why && (
        <section aria-labelledby="why-title">
          <h2 id="why-title">Why is it not running?</h2>
          {why.note && <p>{why.note}</p>}
          {why.verdicts.length === 0 && <p>No pilot is waiting for work right now.</p>}
          <ul>
            {why.verdicts.map((verdict, index) => (
              <li key={index}>
                {verdict.matches ? 'fits' : 'does not fit'}{' '}
                {verdict.target.pilotId ? `pilot ${verdict.target.pilotId}` : verdict.target.kind} at{' '}
                {verdict.target.site}
                {!verdict.matches &&
                  `: ${verdict.checks
                    .filter((c) => !c.pass)
                    .map((c) => `${c.requirement} (${c.reason})`)
                    .join('; ')}`}
              </li>
            ))}
          </ul>
        </section>
      )}
      <section aria-labelledby="history-title">
        <h2 id="history-title">History</h2>
        <table>
          <TableHead columns={['At', 'Status', 'Minor status', 'Application status', 'Source']} />
          <tbody>
            {job.history.map((row, index) => (
              <tr key={index}>
                <td>
                  <time dateTime={row.at}>{row.at.replace('T', ' ').slice(0, 23)}</time>
                </td>
                <td>{row.status}</td>
                <td>{row.note ?? row.minorStatus}</td>
                <td>{row.applicationStatus}</td>
                <td>{row.source}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section aria-labelledby="output-title">
        <h2 id="output-title">Output (last lines)</h2>
        <h3>std.out</h3>
        <pre data-testid="stdout">{logs?.outputTail?.stdout || '(nothing yet)'}</pre>
        <h3>std.err</h3>
        <pre>{logs?.outputTail?.stderr || '(nothing yet)'}</pre>
      </section>
      <section aria-labelledby="requirements-title">
        <h2 id="requirements-title">Requirements</h2>
        <pre>{JSON.stringify(job.description.requirements ?? {}, null, 2)}</pre>
      </section>
    </article>
  );
}
