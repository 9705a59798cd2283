/** Sandbox routes: content-addressed upload and download (users, and jobs with their job token). */
import { PilothouseError } from '../../../shared/errors.ts';
import { formatByteSize } from '../../../shared/byte-size.ts';
import { isoNow } from '../../../shared/clock.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import { liveJobOfToken } from '../../auth/job-tokens.ts';
import { isJobAdministratorFor } from '../../auth/policy.ts';
import { parseSandboxRef } from '../../sandbox/sandbox-store.ts';
import { z } from 'zod';
import { parseOrThrow } from '../../../shared/validation.ts';
import { readJsonBody, type Route } from '../router.ts';
import type { RouteDeps } from './context.ts';

const missingSchema = z.strictObject({
  sandboxes: z
    .array(z.string().regex(/^sha256:[0-9a-f]{64}$/, 'sandboxes are named sha256:<64 hex>'))
    .min(1)
    .max(1000),
});

const SANDBOX_CONTENT_TYPES = /^application\/(gzip|x-gzip|x-tar|octet-stream)\b/i;

export function sandboxRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/sandboxes/missing',
      policy: 'userOrJob',
      summary:
        'which of these sandboxes ({sandboxes: ["sha256:..."]}) the caller must still upload: those not stored for its VO',
      docs: { body: missingSchema },
      async handler({ req, principal }) {
        const caller = principal as Principal;
        const { sandboxes } = parseOrThrow(missingSchema, await readJsonBody(req, 256 * 1024));
        const missing: string[] = [];
        for (const ref of sandboxes) {
          const stored = await deps.store.getSandbox(parseSandboxRef(ref));
          if (stored === null || stored.vo !== caller.vo) missing.push(ref);
        }
        return { status: 200, json: { missing } };
      },
    },
    {
      method: 'PUT',
      path: '/api/sandboxes/:ref',
      policy: 'userOrJob',
      summary: 'upload a sandbox (tar.gz) under its sha256; the bytes must hash to it',
      docs: {
        otherBodies: [{ contentType: 'application/gzip', description: 'the sandbox, a tar.gz whose sha256 is {ref}' }],
        answer: { status: 201, description: 'stored (200: it was there already)' },
      },
      async handler({ req, params, principal, logger }) {
        const caller = principal as Principal;
        const sha256 = parseSandboxRef(params.ref ?? '');
        if (!SANDBOX_CONTENT_TYPES.test(req.headers['content-type'] ?? '')) {
          throw new PilothouseError('UNSUPPORTED_MEDIA_TYPE', 'a sandbox is uploaded as application/gzip');
        }
        const declared = Number(req.headers['content-length'] ?? NaN);
        if (declared > deps.sandboxes.maxBytes) throw deps.sandboxes.tooLarge();
        const owner = caller.kind === 'job' ? (await liveJobOfToken(deps.store, caller)).owner : caller.subject;
        const room = await roomForUpload(deps, sha256, caller.vo);
        if (declared > room.bytes) throw room.error();
        const { sizeBytes, created } = await deps.sandboxes.put(sha256, req, room);
        await deps.store.recordSandbox({ sha256, sizeBytes, vo: caller.vo, owner, createdAt: isoNow(deps.clock) });
        logger.info({ sandbox: sha256, sizeBytes, created }, 'sandbox stored');
        return { status: created ? 201 : 200, json: { sandbox: `sha256:${sha256}`, sizeBytes } };
      },
    },
    {
      method: 'GET',
      path: '/api/sandboxes/:ref',
      policy: 'userOrJob',
      summary: 'download a sandbox: its owner, a job administrator of its VO, or a job that uses it',
      async handler({ params, principal }) {
        const caller = principal as Principal;
        const ref = params.ref ?? '';
        const sha256 = parseSandboxRef(ref);
        const sandbox = await deps.store.getSandbox(sha256);
        if (!sandbox) throw new PilothouseError('SANDBOX_NOT_FOUND', `no sandbox ${ref}`);
        let allowed: boolean;
        if (caller.kind === 'job') {
          const job = await liveJobOfToken(deps.store, caller);
          allowed = job.description.inputSandbox.includes(ref) || job.outputSandbox === ref;
        } else {
          allowed =
            isJobAdministratorFor(caller, sandbox.vo) || (sandbox.vo === caller.vo && sandbox.owner === caller.subject);
        }
        if (!allowed) throw new PilothouseError('FORBIDDEN', `sandbox ${ref} is not yours`);
        return {
          status: 200,
          stream: deps.sandboxes.open(sha256),
          headers: { 'content-type': 'application/gzip', 'content-length': String(sandbox.sizeBytes) },
        };
      },
    },
  ];
}

/**
 * How many bytes this upload may take: the per-sandbox limit, or less when the VO's quota is nearly
 * spent. A sandbox already recorded costs nothing more. Concurrent uploads of one VO can each pass the
 * check, so the quota may be overrun by at most the uploads in flight at once.
 */
async function roomForUpload(
  deps: RouteDeps,
  sha256: string,
  vo: string,
): Promise<{ bytes: number; error: () => PilothouseError }> {
  const perSandbox = { bytes: deps.sandboxes.maxBytes, error: () => deps.sandboxes.tooLarge() };
  const quota = deps.limits.maxSandboxBytesPerVo;
  if (quota === null || (await deps.store.getSandbox(sha256)) !== null) return perSandbox;
  const used = await deps.store.sandboxBytesOfVo(vo);
  const left = Math.max(0, quota - used);
  if (left >= perSandbox.bytes) return perSandbox;
  return {
    bytes: left,
    error: () =>
      new PilothouseError(
        'SANDBOX_QUOTA_EXCEEDED',
        `VO ${vo} stores ${formatByteSize(used)} of sandboxes of its ${formatByteSize(quota)} quota: this upload does not fit (see --max-sandbox-bytes-per-vo)`,
        { vo, usedBytes: used, quotaBytes: quota },
      ),
  };
}
