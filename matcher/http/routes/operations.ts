/** What operators' tools read: Prometheus metrics and readiness (liveness is /healthz). */
import { Readable } from 'node:stream';
import { PilothouseError } from '../../../shared/errors.ts';
import type { Route } from '../router.ts';
import type { RouteDeps } from './context.ts';

export function operationsRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/metrics',
      policy: 'public',
      summary: 'Prometheus metrics (text format): jobs, task queues, pilots, matches, store commits, frames, HTTP',
      async handler() {
        const text = await deps.metrics.text();
        return {
          status: 200,
          stream: Readable.from([text]),
          headers: { 'content-type': deps.metrics.contentType },
        };
      },
    },
    {
      method: 'GET',
      path: '/readyz',
      policy: 'public',
      summary: 'readiness: 200 when this matcher takes work, 503 while it stops or its store cannot work',
      handler: async () => {
        if (deps.stopping()) {
          throw new PilothouseError('SHUTTING_DOWN', 'the matcher is stopping', { replica: deps.replicaId });
        }
        const fault = deps.storeFault();
        if (fault !== null) throw new PilothouseError('STORE_UNAVAILABLE', fault, { replica: deps.replicaId });
        return { status: 200, json: { status: 'ready', replica: deps.replicaId } };
      },
    },
  ];
}
