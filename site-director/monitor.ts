/**
 * Following submitted pilots to their end: every pilot the matcher says this director still tracks is
 * asked about at its CE (one status call per CE for all its pilots), and what changed is reported
 * back. When a pilot has ended, its output is fetched from the CE and stored with the matcher, its
 * final status (sharpened by the output when the batch system says more there) is recorded, the CE
 * side is cleaned, and the outcome feeds the throttles: a pilot that never reached the matcher was
 * missed; one that reached it and ran nothing was empty.
 */
import { toPilothouseError } from '../shared/errors.ts';
import { FINAL_PILOT_STATUSES } from '../shared/pilot/status.ts';
import { tailOf, type PilotStatusUpdate } from '../shared/protocol/site-director.ts';
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { BackendStatus, CeBackend, FetchedOutput, SubmittedPilot } from './backends/backend.ts';
import type { DirectorMatcherClient, TrackedPilot } from './matcher-client.ts';
import { mapLimit } from './map-limit.ts';
import type { PilotOutcome, Throttles } from './throttles.ts';

export interface MonitorDeps {
  matcher: DirectorMatcherClient;
  backends: ReadonlyMap<string, CeBackend>;
  throttles: Throttles;
  clock: Clock;
  logger: Logger;
  parallelCes: number;
  ceTimeoutMs: number;
  lostAfterMs: number;
  signal: AbortSignal;
}

export interface MonitorResult {
  tracked: number;
  updates: number;
  outputsFetched: number;
  /** Ended pilots per queue key (`site/ce/queue`), by outcome. */
  ended: number;
}

const ENDED_BY_BACKEND: ReadonlySet<string> = new Set(['Done', 'Failed', 'Aborted']);

export async function monitorPilots(director: string, deps: MonitorDeps): Promise<MonitorResult> {
  const tracked = await deps.matcher.trackedPilots(director);
  const byCe = new Map<string, TrackedPilot[]>();
  for (const pilot of tracked) {
    const key = `${pilot.site}/${pilot.ce ?? ''}`;
    const list = byCe.get(key);
    if (list) list.push(pilot);
    else byCe.set(key, [pilot]);
  }
  const updates: PilotStatusUpdate[] = [];
  let outputsFetched = 0;
  let ended = 0;
  await mapLimit([...byCe.entries()], deps.parallelCes, async ([ceKey, pilots]) => {
    const logger = deps.logger.child({ ce: ceKey });
    const backend = deps.backends.get(ceKey);
    if (!backend) {
      // The CE left the configuration: its pilots can no longer be followed.
      for (const pilot of pilots)
        updates.push(untrackUpdate(pilot, 'its CE is no longer in the site director configuration', deps));
      return;
    }
    const refs = pilots.filter((p) => p.backendRef !== null).map((p) => ({ stamp: p.id, ref: p.backendRef as string }));
    let statuses: Map<string, BackendStatus>;
    try {
      statuses = await backend.status(refs, ceSignal(deps));
    } catch (thrown) {
      const error = toPilothouseError(thrown);
      deps.throttles.ceFailed(ceKey, error);
      logger.warn({ code: error.code, err: error.message }, 'pilot status query failed');
      return;
    }
    const held: SubmittedPilot[] = [];
    for (const pilot of pilots) {
      const ref = refs.find((r) => r.stamp === pilot.id);
      const status = ref ? statuses.get(ref.ref) : undefined;
      if (!ref || !status) continue;
      if (status.cancelToEnd) held.push(ref);
      const update = await followPilot(pilot, ref, status, backend, deps, logger);
      if (update === null) continue;
      updates.push(update.update);
      if (update.outputFetched) outputsFetched += 1;
      if (update.outcome !== null) {
        ended += 1;
        deps.throttles.pilotEnded(ceKey, `${ceKey}/${pilot.queue ?? ''}`, update.outcome);
      }
    }
    if (held.length > 0) await backend.cancel(held, ceSignal(deps)).catch(() => undefined);
  });
  if (updates.length > 0) await deps.matcher.updateStatuses(updates);
  return { tracked: tracked.length, updates: updates.length, outputsFetched, ended };
}

function ceSignal(deps: MonitorDeps): AbortSignal {
  return AbortSignal.any([deps.signal, AbortSignal.timeout(deps.ceTimeoutMs)]);
}

interface Followed {
  update: PilotStatusUpdate;
  outputFetched: boolean;
  outcome: PilotOutcome | null;
}

async function followPilot(
  pilot: TrackedPilot,
  ref: SubmittedPilot,
  status: BackendStatus,
  backend: CeBackend,
  deps: MonitorDeps,
  logger: Logger,
): Promise<Followed | null> {
  const at = new Date(deps.clock.nowMs()).toISOString();
  if (ENDED_BY_BACKEND.has(status.status)) return finish(pilot, ref, status, backend, deps, logger, at);
  if (status.status === 'Unknown') {
    // The batch system forgot a pilot that had already said bye: nothing more to learn.
    if (FINAL_PILOT_STATUSES.has(pilot.status)) {
      const output = await fetchOutput(backend, ref, deps, logger);
      return {
        update: { ...toUpdate(pilot, status, at), untrack: true },
        outputFetched: output !== null,
        outcome: classify(pilot, status),
      };
    }
    const unknownSinceMs = pilot.status === 'Unknown' && pilot.statusAt ? Date.parse(pilot.statusAt) : null;
    if (unknownSinceMs !== null && deps.clock.nowMs() - unknownSinceMs >= deps.lostAfterMs) {
      const output = await fetchOutput(backend, ref, deps, logger);
      const lost: BackendStatus = {
        ...status,
        reason: `its CE has not known it for ${Math.round((deps.clock.nowMs() - unknownSinceMs) / 1000)} s`,
      };
      logger.info({ pilotId: pilot.id }, 'pilot lost');
      return {
        update: { ...toUpdate(pilot, lost, at), status: 'Lost', untrack: true },
        outputFetched: output !== null,
        outcome: pilot.connectedAt === null ? 'missed' : classify(pilot, lost),
      };
    }
  }
  if (pilot.backendStatus === status.native && pilot.status !== 'Submitted') return null;
  return { update: toUpdate(pilot, status, at), outputFetched: false, outcome: null };
}

async function finish(
  pilot: TrackedPilot,
  ref: SubmittedPilot,
  status: BackendStatus,
  backend: CeBackend,
  deps: MonitorDeps,
  logger: Logger,
  at: string,
): Promise<Followed> {
  const output = await fetchOutput(backend, ref, deps, logger);
  const final = backend.refineFinalStatus(status, output);
  if (output !== null) await backend.clean(ref, ceSignal(deps)).catch(() => undefined);
  logger.info(
    { pilotId: pilot.id, status: final.status, native: final.native, exitCode: final.exitCode },
    'pilot ended',
  );
  return {
    update: { ...toUpdate(pilot, final, at), untrack: true },
    outputFetched: output !== null,
    outcome: classify(pilot, final),
  };
}

/** Fetches the wrapper's output and stores it with the matcher; null when there is none. */
async function fetchOutput(
  backend: CeBackend,
  ref: SubmittedPilot,
  deps: MonitorDeps,
  logger: Logger,
): Promise<FetchedOutput | null> {
  if (!backend.capabilities.fetchesOutput) return null;
  try {
    const output = await backend.fetchOutput(ref, ceSignal(deps));
    if (output === null) return null;
    const stdout = tailOf(output.stdout);
    const stderr = tailOf(output.stderr);
    await deps.matcher.uploadOutput(ref.stamp, {
      stdout: stdout.text,
      stderr: stderr.text,
      truncated: output.truncated || stdout.truncated || stderr.truncated,
    });
    return output;
  } catch (thrown) {
    logger.warn({ pilotId: ref.stamp, err: toPilothouseError(thrown).message }, 'pilot output not fetched');
    return null;
  }
}

/** Missed: ended without reaching the matcher (cancels and preemptions are nobody's fault). */
function classify(pilot: TrackedPilot, status: BackendStatus): PilotOutcome | null {
  if (pilot.connectedAt === null) {
    return status.status === 'Aborted' && !status.cancelToEnd ? null : 'missed';
  }
  return pilot.jobsMatched > 0 ? 'useful' : 'empty';
}

function toUpdate(pilot: TrackedPilot, status: BackendStatus, at: string): PilotStatusUpdate {
  return {
    stamp: pilot.id,
    status: status.status,
    reason: status.reason.slice(0, 1024),
    native: status.native.slice(0, 256),
    exitCode: status.exitCode,
    at,
    untrack: false,
  };
}

function untrackUpdate(pilot: TrackedPilot, reason: string, deps: MonitorDeps): PilotStatusUpdate {
  return {
    stamp: pilot.id,
    status: FINAL_PILOT_STATUSES.has(pilot.status) ? pilot.status : 'Lost',
    reason,
    native: pilot.backendStatus ?? 'untracked',
    exitCode: null,
    at: new Date(deps.clock.nowMs()).toISOString(),
    untrack: true,
  };
}
