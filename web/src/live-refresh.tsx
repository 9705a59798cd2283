/**
 * Keeps a view current without a reload: it is reloaded shortly after any visible job changes (the
 * live event stream), which is what moves task-queue counts and pilots' job counts, and — for what
 * no job event announces, such as a pilot leaving or a site director's report — every
 * `pollIntervalMs` while the tab is shown.
 */
import { useEffect, useRef, useState } from 'react';
import { watchJobs } from './live.ts';

/** Changes arriving within this window cause one reload, not one each. */
const RELOAD_DEBOUNCE_MS = 500;

/** `pollIntervalMs: null` for views that only job changes can alter. */
export function useLiveRefresh(load: () => void | Promise<void>, pollIntervalMs: number | null = 10_000): boolean {
  const [live, setLive] = useState(false);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let reloadSoon: number | null = null;
    const reload = () => {
      if (reloadSoon !== null) return;
      reloadSoon = window.setTimeout(() => {
        reloadSoon = null;
        void loadRef.current();
      }, RELOAD_DEBOUNCE_MS);
    };
    const stop = watchJobs(reload, setLive);
    const poll =
      pollIntervalMs === null
        ? null
        : window.setInterval(() => {
            if (document.visibilityState === 'visible') reload();
          }, pollIntervalMs);
    return () => {
      stop();
      if (poll !== null) window.clearInterval(poll);
      if (reloadSoon !== null) window.clearTimeout(reloadSoon);
    };
  }, [pollIntervalMs]);
  return live;
}

/** "live" while the event stream is open, "not live" while it reconnects. */
export function LiveBadge({ live }: { live: boolean }) {
  return (
    <span className={live ? 'live on' : 'live'} role="status" data-testid="live">
      {live ? 'live' : 'not live'}
    </span>
  );
}
