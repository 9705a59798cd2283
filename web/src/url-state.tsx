/**
 * The view's state lives in the URL (path and query), so a view can be shared as a link and the
 * browser's back button works: `useLocation` re-renders on navigation, `navigate` and `setQuery`
 * change it.
 */
import { useEffect, useState, type AnchorHTMLAttributes, type ReactNode } from 'react';

type AnchorAttributes = Omit<AnchorHTMLAttributes<HTMLAnchorElement>, 'href' | 'onClick'>;

const listeners = new Set<() => void>();
window.addEventListener('popstate', () => listeners.forEach((listener) => listener()));

export function navigate(to: string, replace = false): void {
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  listeners.forEach((listener) => listener());
}

export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setVersion] = useState(0);
  useEffect(() => {
    const listener = () => setVersion((v) => v + 1);
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

/** Sets or removes query parameters of the current view (arrays as repeated parameters). */
export function setQuery(changes: Record<string, string | string[] | null>, replace = false): void {
  const query = new URLSearchParams(location.search);
  for (const [name, value] of Object.entries(changes)) {
    query.delete(name);
    if (value === null) continue;
    for (const item of Array.isArray(value) ? value : [value]) query.append(name, item);
  }
  const text = query.toString();
  navigate(`${location.pathname}${text ? `?${text}` : ''}`, replace);
}

/** A link to another view: a real href (new tab, copy link) that navigates in place on a plain click. */
export function ViewLink({ to, children, ...rest }: { to: string; children: ReactNode } & AnchorAttributes) {
  return (
    <a
      href={to}
      {...rest}
      onClick={(event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        navigate(to);
      }}
    >
      {children}
    </a>
  );
}
