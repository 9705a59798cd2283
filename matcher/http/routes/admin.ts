/** Service routes: health, public keys, task queues and pilots (administrators). */
import { PilothouseError } from '../../../shared/errors.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import { isAdministrator } from '../../auth/policy.ts';
import type { Route } from '../router.ts';
import { parseId, type RouteDeps } from './context.ts';

export function adminRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/healthz',
      policy: 'public',
      summary: 'liveness, and which replica answered (503 STORE_UNAVAILABLE when its store cannot work)',
      handler: async () => {
        const fault = deps.storeFault();
        if (fault !== null) throw new PilothouseError('STORE_UNAVAILABLE', fault, { replica: deps.replicaId });
        return { status: 200, json: { status: 'ok', replica: deps.replicaId, cluster: deps.clusterId } };
      },
    },
    {
      method: 'GET',
      path: '/.well-known/jwks.json',
      policy: 'public',
      summary: 'public keys that verify Pilothouse tokens',
      async handler() {
        await deps.keys.refresh();
        return { status: 200, json: deps.keys.publicJwks(), headers: { 'cache-control': 'max-age=60' } };
      },
    },
    {
      method: 'GET',
      path: '/api/task-queues',
      policy: 'jobAdmin',
      summary: 'task queues with waiting jobs (of the caller VO unless service administrator)',
      async handler({ principal }) {
        const caller = principal as Principal;
        const taskQueues = await deps.store.listTaskQueues(isAdministrator(caller) ? {} : { vo: caller.vo });
        return { status: 200, json: { taskQueues } };
      },
    },
    {
      method: 'GET',
      path: '/api/task-queues/:id',
      policy: 'jobAdmin',
      summary: 'one task queue with its requirements and job count',
      async handler({ params, principal }) {
        const caller = principal as Principal;
        const tq = await deps.store.getTaskQueue(parseId(params.id, 'id'));
        if (!tq || (!isAdministrator(caller) && tq.vo !== caller.vo)) {
          throw new PilothouseError('ROUTE_NOT_FOUND', `no task queue ${params.id}`);
        }
        return { status: 200, json: tq };
      },
    },
  ];
}
