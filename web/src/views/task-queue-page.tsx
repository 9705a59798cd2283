/**
 * One task queue: its requirements, where it stands in the ranking now (boost, job-type rank, its
 * group's share and fair-share place, its owner's place), the jobs its owner and group hold, the idle
 * pilots that fit it, and why nothing takes it. Job administrators of its VO pause, resume and boost
 * it here; the matcher refuses anyone else, and the page says so. Updated live.
 */
import { useCallback, useEffect, useState } from 'react';
import { api, perform } from '../api.ts';
import { LiveBadge, useLiveRefresh } from '../live-refresh.tsx';
import { useLocation, ViewLink } from '../url-state.tsx';
import { shortTime } from '../format.ts';
import { cores, statedRequirements, type TaskQueueDetail } from './task-queue-model.ts';

/** The Job Monitor showing the waiting jobs of one task queue. */
const waitingJobsView = (id: number): string =>
  `/ui/jobs?${new URLSearchParams([
    ['f', `taskQueueId|eq|${id}`],
    ['f', 'status|eq|Waiting'],
  ])}`;

export function TaskQueuePage() {
  const { query } = useLocation();
  const id = Number(query.get('id'));
  const [tq, setTq] = useState<TaskQueueDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [reason, setReason] = useState('');
  const [boost, setBoost] = useState('');

  const load = useCallback(
    () =>
      api<TaskQueueDetail>('GET', `/api/task-queues/${id}`).then(
        ({ body }) => {
          setTq(body);
          setError(null);
        },
        (failure: Error) => setError(failure.message),
      ),
    [id],
  );
  useEffect(() => void load(), [load]);
  const live = useLiveRefresh(load);

  const act = (action: 'pause' | 'resume' | 'boost', body: unknown, done: string) =>
    perform(
      api('POST', `/api/task-queues/${id}/${action}`, body),
      { done, refusedPrefix: 'refused: ' },
      setMessage,
      load,
    );

  if (error) return <p role="alert">{error}</p>;
  if (!tq) return <p>Loading task queue {id}…</p>;
  const { standing } = tq;
  return (
    <article aria-labelledby="tq-page-title">
      <div className="title-row">
        <h1 id="tq-page-title">
          Task queue {tq.id}{' '}
          <span className="chip" data-testid="tq-state">
            {tq.paused ? 'paused' : 'active'}
          </span>
        </h1>
        <LiveBadge live={live} />
      </div>
      {message && (
        <p role="status" data-testid="tq-message">
          {message}
        </p>
      )}
      <dl className="facts">
        <dt>Owner</dt>
        <dd>
          {tq.owner || '(the group)'} ({tq.vo} / {tq.group})
        </dd>
        <dt>Waiting jobs</dt>
        <dd data-testid="tq-waiting">
          <ViewLink to={waitingJobsView(tq.id)}>{tq.waitingJobs}</ViewLink>, oldest since{' '}
          {shortTime(tq.oldestWaitingSince)}
        </dd>
        <dt>Paused</dt>
        <dd>{tq.paused ? `by ${tq.paused.by} at ${shortTime(tq.paused.at)}: ${tq.paused.reason}` : 'no'}</dd>
        <dt>Boost</dt>
        <dd data-testid="tq-boost">{standing.boost}</dd>
        <dt>Job type rank</dt>
        <dd>
          {tq.requirements.jobType}: {standing.jobTypeRank}
        </dd>
        <dt>Group share</dt>
        <dd>
          {standing.groupShare} — {tq.group} is {standing.groupPlace.place} of {standing.groupPlace.of} in the
          fair-share order now
        </dd>
        <dt>Owner&apos;s place</dt>
        <dd>
          {standing.ownerPlace
            ? `${standing.ownerPlace.place} of ${standing.ownerPlace.of} in ${tq.group}`
            : 'the group shares jobs (no per-owner order)'}
        </dd>
        <dt>Top user priority</dt>
        <dd>{standing.topUserPriority}</dd>
        <dt>Jobs held</dt>
        <dd>
          {tq.held.owner} by the owner, {tq.held.group} by the group (matched or running now)
        </dd>
      </dl>

      <section aria-labelledby="fit-title">
        <h2 id="fit-title">Pilots that could take it</h2>
        <p>
          {tq.fitting.pilots.length} of {tq.idlePilots} idle pilot{tq.idlePilots === 1 ? '' : 's'} of {tq.vo} fit
          {tq.fitting.sites.length > 0 && `, at ${tq.fitting.sites.join(', ')}`}.
        </p>
        <ul data-testid="tq-fitting">
          {tq.fitting.pilots.map((target) => (
            <li key={target.pilotId ?? target.site}>
              {target.pilotId ? (
                <ViewLink to={`/ui/pilot?id=${encodeURIComponent(target.pilotId)}`}>{target.pilotId}</ViewLink>
              ) : (
                target.kind
              )}{' '}
              at {target.site}
            </li>
          ))}
        </ul>
        {tq.whyIdle.length > 0 && (
          <>
            <h3>Why nothing takes it</h3>
            <ul data-testid="tq-why-idle">
              {tq.whyIdle.map((line) => (
                <li key={line}>{line}</li>
              ))}
            </ul>
          </>
        )}
      </section>

      <section aria-labelledby="tq-actions-title">
        <h2 id="tq-actions-title">Steer it</h2>
        <p className="muted">Job administrators of {tq.vo} and service administrators only.</p>
        <form
          className="inline-form"
          aria-label="Pause or resume"
          onSubmit={(event) => {
            event.preventDefault();
            if (tq.paused) void act('resume', undefined, 'resumed');
            else void act('pause', { reason: reason || 'paused from the web monitor' }, 'paused');
          }}
        >
          {!tq.paused && (
            <label>
              Reason <input value={reason} onChange={(event) => setReason(event.target.value)} maxLength={512} />
            </label>
          )}
          <button type="submit">{tq.paused ? 'Resume' : 'Pause'}</button>
        </form>
        <form
          className="inline-form"
          aria-label="Boost"
          onSubmit={(event) => {
            event.preventDefault();
            void act('boost', { boost: Number(boost) }, `boost set to ${boost}`);
          }}
        >
          <label>
            Boost{' '}
            <input
              type="number"
              min={-1000}
              max={1000}
              step={1}
              required
              value={boost}
              onChange={(event) => setBoost(event.target.value)}
            />
          </label>
          <button type="submit">Set boost</button>
        </form>
      </section>

      <section aria-labelledby="tq-req-title">
        <h2 id="tq-req-title">Requirements</h2>
        <p>
          {cores(tq.requirements)} core(s), {tq.requirements.wallTimeSec} s of wall time
        </p>
        <dl className="facts">
          {statedRequirements(tq.requirements).map(([name, value]) => (
            <div key={name} className="fact">
              <dt>{name}</dt>
              <dd>{value}</dd>
            </div>
          ))}
        </dl>
      </section>
    </article>
  );
}
