/**
 * The shell: a sign-in gate, the navigation, and the view the URL names
 * (/ui/jobs, /ui/job?id=, /ui/task-queues, /ui/task-queue?id=, /ui/pilots, /ui/pilot?id=, /ui/sites, /ui/schedules[?id=]; /ui/callback finishes a sign-in).
 */
import { useEffect, useState } from 'react';
import { api } from './api.ts';
import { currentSession, finishSignIn, signOut } from './session.ts';
import { navigate, useLocation, ViewLink } from './url-state.tsx';
import { JobMonitor } from './views/job-monitor.tsx';
import { JobPage } from './views/job-page.tsx';
import { SignInPage } from './views/sign-in.tsx';
import { TaskQueues } from './views/task-queues.tsx';
import { Pilots } from './views/pilots.tsx';
import { PilotPage } from './views/pilot-page.tsx';
import { TaskQueuePage } from './views/task-queue-page.tsx';
import { Sites } from './views/sites.tsx';
import { Schedules } from './views/schedules.tsx';

export interface Me {
  user: string;
  vo: string;
  group: string;
  properties: string[];
}

const VIEWS: [string, string][] = [
  ['/ui/jobs', 'Jobs'],
  ['/ui/task-queues', 'Task queues'],
  ['/ui/pilots', 'Pilots'],
  ['/ui/sites', 'Sites'],
  ['/ui/schedules', 'Schedules'],
];

const ROUTED_VIEWS = [
  '/ui/jobs',
  '/ui/job',
  '/ui/task-queues',
  '/ui/task-queue',
  '/ui/pilots',
  '/ui/pilot',
  '/ui/sites',
  '/ui/schedules',
];

function Callback() {
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    finishSignIn(new URL(location.href)).then(
      (returnTo) => navigate(returnTo || '/ui/jobs', true),
      (failure: Error) => setError(failure.message),
    );
  }, []);
  return (
    <main className="narrow">
      <h1>Signing in…</h1>
      {error && (
        <p role="alert">
          {error} <a href="/ui/">Start again</a>
        </p>
      )}
    </main>
  );
}

export function App() {
  const { path } = useLocation();
  const [me, setMe] = useState<Me | null>(null);
  const [checked, setChecked] = useState(false);
  const signedIn = currentSession() !== null;

  useEffect(() => {
    if (path === '/ui/callback' || !signedIn) {
      setChecked(true);
      return;
    }
    api<Me>('GET', '/api/auth/userinfo').then(
      ({ body }) => {
        setMe(body);
        setChecked(true);
      },
      () => {
        void signOut();
        setMe(null);
        setChecked(true);
      },
    );
  }, [path === '/ui/callback', signedIn]);

  if (path === '/ui/callback') return <Callback />;
  if (!checked) return null;
  if (!me) return <SignInPage onSignedIn={() => navigate(location.pathname + location.search, true)} />;

  const view = path === '/ui' || path === '/ui/' ? '/ui/jobs' : path;
  return (
    <>
      <header className="top">
        <span className="brand">Pilothouse</span>
        <nav aria-label="Views">
          {VIEWS.map(([href, label]) => (
            <ViewLink key={href} to={href} aria-current={view === href ? 'page' : undefined}>
              {label}
            </ViewLink>
          ))}
        </nav>
        <span className="who" data-testid="who">
          {me.user} · {me.vo} / {me.group}
        </span>
        <button
          type="button"
          onClick={() => {
            void signOut().then(() => {
              setMe(null);
              navigate('/ui/', true);
            });
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        {view === '/ui/jobs' && <JobMonitor me={me} />}
        {view === '/ui/job' && <JobPage />}
        {view === '/ui/task-queues' && <TaskQueues me={me} />}
        {view === '/ui/task-queue' && <TaskQueuePage />}
        {view === '/ui/pilots' && <Pilots me={me} />}
        {view === '/ui/pilot' && <PilotPage />}
        {view === '/ui/sites' && <Sites me={me} />}
        {view === '/ui/schedules' && <Schedules />}
        {!ROUTED_VIEWS.includes(view) && (
          <p>
            No such view. <a href="/ui/jobs">Jobs</a>
          </p>
        )}
      </main>
    </>
  );
}
