/**
 * Auth routes: the pilot-token exchange (public, throttled per address, every outcome logged), pilot
 * secrets minted by service administrators, token revocation, and "who am I".
 */
import { z } from 'zod';
import { parseOrThrow } from '../../../shared/validation.ts';
import { PilothouseError } from '../../../shared/errors.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import { tokenIdOf } from '../../auth/tokens.ts';
import { readJsonBody, type Route } from '../router.ts';
import type { RouteDeps } from './context.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$/;
const STAMP = /^[A-Za-z0-9_.-]{1,64}$/;
const name = z.string().regex(NAME, 'letters, digits and _.:@+- (max 128, no wildcard)');
const stamp = z.string().regex(STAMP, '1-64 letters, digits, _ . -');

const exchangeSchema = z.union([
  z.strictObject({ pilotStamp: stamp, secret: z.string().min(1).max(256) }),
  z.strictObject({ pilotStamp: stamp, refreshToken: z.string().min(1).max(256) }),
]);

const mintSchema = z.strictObject({
  vo: name,
  site: name,
  pilotStamp: stamp,
  ttlSec: z.int().positive().optional(),
});
/** A site director mints the secrets of a whole submission at once. */
const mintBatchSchema = z.strictObject({
  vo: name,
  site: name,
  pilotStamps: z.array(stamp).min(1).max(1000),
  ttlSec: z.int().positive().optional(),
});

const revokeSchema = z.union([
  z.strictObject({
    tokenId: z.string().min(1).max(512),
    /** When the token expires (ISO); the revocation is kept until then. Default: the longest token life. */
    expiresAt: z.iso.datetime().optional(),
    reason: z.string().max(1024).optional(),
  }),
  z.strictObject({ token: z.string().min(1).max(16_384), reason: z.string().max(1024).optional() }),
]);

export function authRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/auth/pilot-token',
      policy: 'public',
      summary:
        'exchange a one-time pilot secret ({pilotStamp, secret}) or refresh token ({pilotStamp, refreshToken}) for a pilot token and a new refresh token',
      docs: { body: exchangeSchema },
      async handler({ req, logger }) {
        const remoteAddress = req.socket.remoteAddress ?? 'unknown';
        await deps.exchangeLimiter.check(remoteAddress);
        try {
          const request = parseOrThrow(exchangeSchema, await readJsonBody(req, 16 * 1024));
          const grant = await deps.pilotCredentials.exchange(request, { remoteAddress });
          return {
            status: 200,
            headers: { 'cache-control': 'no-store' },
            json: {
              tokenType: 'Bearer',
              pilotToken: grant.pilotToken,
              expiresAt: new Date(grant.expiresAtMs).toISOString(),
              refreshToken: grant.refreshToken,
              refreshExpiresAt: new Date(grant.refreshExpiresAtMs).toISOString(),
              pilotStamp: grant.pilotStamp,
              vo: grant.vo,
              site: grant.site,
            },
          };
        } catch (thrown) {
          if (thrown instanceof PilothouseError && thrown.httpStatus < 500) {
            // A reused credential revoked the whole pilot: its open session must notice at once.
            if (thrown.code === 'PILOT_SECRET_SPENT') deps.cluster.credentialsChanged();
            // A count that cannot be written must not hide the refusal the caller is owed.
            await deps.exchangeLimiter
              .recordFailure(remoteAddress)
              .catch((error: unknown) => logger.warn({ err: error }, 'exchange failure not counted'));
            logger.warn({ remoteAddress, code: thrown.code }, 'pilot token exchange refused');
          }
          throw thrown;
        }
      },
    },
    {
      method: 'POST',
      path: '/api/auth/pilot-secrets',
      policy: 'serviceAdmin',
      summary:
        'mint one-time pilot secrets for {vo, site, pilotStamp} or {vo, site, pilotStamps: [...]} (only hashes are stored); returned once',
      docs: { body: z.union([mintSchema, mintBatchSchema]) },
      async handler({ req, principal }) {
        const caller = principal as Principal;
        const raw = await readJsonBody(req, 256 * 1024);
        if (typeof raw === 'object' && raw !== null && 'pilotStamps' in raw) {
          const batch = parseOrThrow(mintBatchSchema, raw);
          if (new Set(batch.pilotStamps).size !== batch.pilotStamps.length) {
            throw new PilothouseError('VALIDATION_FAILED', 'pilotStamps: a stamp is listed twice', {
              field: 'pilotStamps',
            });
          }
          const secrets = [];
          for (const pilotStamp of batch.pilotStamps) {
            const minted = await deps.pilotCredentials.mintSecret({
              vo: batch.vo,
              site: batch.site,
              pilotStamp,
              ttlSec: batch.ttlSec,
              createdBy: caller.subject,
            });
            secrets.push({ pilotStamp, secret: minted.secret, expiresAt: new Date(minted.expiresAtMs).toISOString() });
          }
          return {
            status: 201,
            headers: { 'cache-control': 'no-store' },
            json: { vo: batch.vo, site: batch.site, secrets },
          };
        }
        const request = parseOrThrow(mintSchema, raw);
        const minted = await deps.pilotCredentials.mintSecret({ ...request, createdBy: caller.subject });
        return {
          status: 201,
          headers: { 'cache-control': 'no-store' },
          json: {
            secret: minted.secret,
            pilotStamp: minted.pilotStamp,
            vo: minted.vo,
            site: minted.site,
            expiresAt: new Date(minted.expiresAtMs).toISOString(),
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/api/auth/revoke',
      policy: 'serviceAdmin',
      summary: 'revoke a token by id ({tokenId, expiresAt?}) or by value ({token}); refused from the next request on',
      docs: { body: revokeSchema },
      async handler({ req, principal, logger }) {
        const caller = principal as Principal;
        const request = parseOrThrow(revokeSchema, await readJsonBody(req, 64 * 1024));
        const nowMs = deps.clock.nowMs();
        const fallbackExpiryMs = nowMs + deps.keys.maxTokenTtlSec * 1000;
        let tokenId: string;
        let expiresAtMs: number;
        if ('token' in request) {
          const id = tokenIdOf(request.token);
          tokenId = id.tokenId;
          expiresAtMs = id.expiresAtMs ?? fallbackExpiryMs;
        } else {
          tokenId = request.tokenId;
          expiresAtMs = request.expiresAt === undefined ? fallbackExpiryMs : Date.parse(request.expiresAt);
        }
        const created = await deps.credentials.revokeToken({
          tokenId,
          expiresAtMs,
          reason: request.reason ?? 'revoked by an administrator',
          revokedBy: caller.subject,
          atMs: nowMs,
        });
        deps.cluster.credentialsChanged();
        logger.warn({ tokenId, revokedBy: caller.subject }, 'token revoked');
        return { status: 200, json: { tokenId, revoked: true, alreadyRevoked: !created } };
      },
    },
    {
      method: 'GET',
      path: '/api/auth/userinfo',
      policy: 'user',
      summary: 'who the token says the caller is: user, VO, group, properties, issuer, expiry',
      async handler({ principal }) {
        const caller = principal as Principal;
        return {
          status: 200,
          json: {
            user: caller.subject,
            vo: caller.vo,
            group: caller.group,
            properties: caller.properties,
            issuer: caller.issuer,
            tokenId: caller.tokenId,
            expiresAt: new Date(caller.expiresAtMs).toISOString(),
          },
        };
      },
    },
  ];
}
