/**
 * Submitting the pilots a decision asked for, in batches the backend takes: stamps, one-time secrets
 * minted by the matcher (bound to VO, site and stamp), one wrapper per pilot, the backend's submit,
 * and the registration of what was submitted. A registration the matcher could not take is kept and
 * retried at the next cycle: a pilot that runs is never forgotten by its director.
 */
import { randomBytes } from 'node:crypto';
import { toPilothouseError } from '../shared/errors.ts';
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { PilotRegistration } from '../shared/protocol/site-director.ts';
import type { CeBackend } from './backends/backend.ts';
import type { CeConfig, QueueConfig } from './config/load.ts';
import type { DirectorMatcherClient } from './matcher-client.ts';
import { generateWrapper } from './wrapper/wrapper.ts';

export interface SubmitDeps {
  director: string;
  matcher: DirectorMatcherClient;
  clock: Clock;
  logger: Logger;
  /** The matcher as worker nodes reach it. */
  pilotMatcherUrl: string;
  bundleSha256: string;
  secretTtlSec: number | null;
  ceTimeoutMs: number;
  signal: AbortSignal;
  /** Registrations to retry (the matcher was unreachable right after a submission). */
  pendingRegistrations: PilotRegistration[];
}

export interface SubmitResult {
  submitted: number;
  failed: number;
  error: Error | null;
}

export function newStamp(): string {
  return randomBytes(16).toString('hex');
}

export async function submitPilots(
  ce: CeConfig,
  queue: QueueConfig,
  vo: string,
  count: number,
  backend: CeBackend,
  deps: SubmitDeps,
): Promise<SubmitResult> {
  const result: SubmitResult = { submitted: 0, failed: 0, error: null };
  const logger = deps.logger.child({ site: ce.site, ce: ce.name, queue: queue.name, vo });
  for (let left = count; left > 0;) {
    const batch = Math.min(left, backend.capabilities.maxPilotsPerSubmit);
    left -= batch;
    const stamps = Array.from({ length: batch }, newStamp);
    let secrets: Map<string, string>;
    try {
      secrets = await deps.matcher.mintSecrets(vo, ce.site, stamps, deps.secretTtlSec);
    } catch (thrown) {
      // Not the CE's fault: no backoff for it, and nothing more this cycle.
      result.failed += batch + left;
      result.error = toPilothouseError(thrown);
      logger.warn({ code: result.error.message }, 'pilot secrets not minted');
      return result;
    }
    const pilots = stamps.map((stamp) => ({
      stamp,
      wrapper: generateWrapper({
        director: deps.director,
        stamp,
        secret: secrets.get(stamp) as string,
        matcherUrl: deps.pilotMatcherUrl,
        site: ce.site,
        ce: ce.name,
        queue: queue.name,
        bundleSha256: deps.bundleSha256,
        nodePaths: queue.pilot.nodePaths,
        bundlePaths: queue.pilot.bundlePaths,
        caFile: queue.pilot.caFile,
        pilot: {
          cores: queue.resources.cores,
          memoryMB: queue.resources.memoryMB,
          wallTimeSec: queue.resources.wallTimeSec,
          gpus: queue.resources.gpus,
          wholeNode: queue.resources.wholeNode,
          tags: queue.slot.tags,
          requiredTags: queue.slot.requiredTags,
          idleTimeoutSec: queue.pilot.idleTimeoutSec,
          extraArgs: queue.pilot.extraArgs,
        },
      }),
    }));
    const submittedAt = new Date(deps.clock.nowMs()).toISOString();
    const outcome = await backend.submit({
      queue: queue.batchQueue,
      resources: queue.resources,
      pilots,
      signal: AbortSignal.any([deps.signal, AbortSignal.timeout(deps.ceTimeoutMs)]),
    });
    const registrations: PilotRegistration[] = outcome.submitted.map((pilot) => ({
      stamp: pilot.stamp,
      vo,
      site: ce.site,
      ce: ce.name,
      queue: queue.name,
      backend: ce.type,
      backendRef: pilot.ref,
      submittedAt,
    }));
    if (registrations.length > 0) {
      try {
        await deps.matcher.registerPilots(deps.director, registrations);
      } catch (thrown) {
        deps.pendingRegistrations.push(...registrations);
        logger.warn(
          { pilots: registrations.length, err: toPilothouseError(thrown).message },
          'pilot registration postponed',
        );
      }
    }
    result.submitted += outcome.submitted.length;
    result.failed += batch - outcome.submitted.length;
    logger.info({ submitted: outcome.submitted.length, asked: batch }, 'pilots submitted');
    if (outcome.error) {
      result.error = outcome.error;
      result.failed += left;
      return result;
    }
  }
  return result;
}
