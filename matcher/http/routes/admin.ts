/** Service routes: health and the public keys that verify tokens. */
import { PilothouseError } from '../../../shared/errors.ts';
import type { Route } from '../router.ts';
import type { RouteDeps } from './context.ts';

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
  ];
}
