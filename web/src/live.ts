/**
 * Live job changes from `GET /api/events` (server-sent events). EventSource cannot send a token, so
 * the stream is read with fetch; on a broken connection it reconnects after a pause, resuming from the
 * last event id so that no change is missed.
 */
import { authHeader } from './api.ts';

export interface JobChange {
  id: number;
  status: string;
  minorStatus: string;
  applicationStatus: string;
  site: string | null;
  lastUpdateAt: string;
}

export function watchJobs(onChange: (jobs: JobChange[]) => void, onState: (live: boolean) => void): () => void {
  const stop = new AbortController();
  let lastId: string | null = null;
  const run = async (): Promise<void> => {
    while (!stop.signal.aborted) {
      try {
        const headers: Record<string, string> = await authHeader();
        if (lastId) headers['last-event-id'] = lastId;
        const response = await fetch('/api/events', { headers, signal: stop.signal });
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        onState(true);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const fields = new Map<string, string>();
            for (const line of block.split('\n')) {
              const colon = line.indexOf(':');
              if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
            }
            if (fields.has('id')) lastId = fields.get('id') ?? null;
            if (fields.get('event') === 'jobs')
              onChange((JSON.parse(fields.get('data') ?? '{}') as { jobs: JobChange[] }).jobs);
          }
        }
      } catch {
        // Dropped or refused: shown as not live, retried below.
      }
      onState(false);
      if (!stop.signal.aborted) await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  };
  void run();
  return () => stop.abort();
}
