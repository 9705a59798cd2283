/**
 * How many pilots a queue gets this cycle: a pure function, so that every rule can be tested on its
 * own and its answer explained. For each VO the queue serves, the matcher said how many pilots of the
 * queue its waiting jobs need (`pilotsNeeded`) and how many of this queue's pilots are still in the
 * batch system (`waiting`, plus `unknown`: they may still start). Pilots already running are not
 * subtracted: with push matching, a job that one of them could take would not be waiting.
 *
 *   wanted  = pilotsNeeded − waiting − unknown            (per VO)
 *   caps    = maxWaitingPilots − (waiting + unknown)      (the queue, all VOs)
 *             maxRunningPilots − (waiting + unknown + running)
 *             maxPilotsPerCycle
 *   submit  = min(wanted, caps) ≥ 0, none while a throttle holds
 *
 * VOs share the caps in the order the configuration lists them.
 */
import type { PilotCounts } from '../shared/protocol/site-director.ts';
import type { QueueCaps } from './config/load.ts';

export interface VoDemand {
  vo: string;
  /** Null when the matcher could not be asked: nothing is submitted blind. */
  pilotsNeeded: number | null;
  waitingJobs: number | null;
  pilots: PilotCounts;
}

export interface VoDecision {
  vo: string;
  submit: number;
  reason: string;
}

export function decideQueue(caps: QueueCaps, demands: readonly VoDemand[], throttles: readonly string[]): VoDecision[] {
  if (throttles.length > 0) {
    return demands.map((d) => ({ vo: d.vo, submit: 0, reason: `throttled: ${throttles.join('; ')}` }));
  }
  let notStarted = 0;
  let present = 0;
  for (const d of demands) {
    notStarted += d.pilots.waiting + d.pilots.unknown;
    present += d.pilots.waiting + d.pilots.unknown + d.pilots.running;
  }
  const limits: [string, number][] = [
    [`maxWaitingPilots ${caps.maxWaitingPilots} − ${notStarted} not started`, caps.maxWaitingPilots - notStarted],
    [`maxRunningPilots ${caps.maxRunningPilots} − ${present} at the queue`, caps.maxRunningPilots - present],
    [`maxPilotsPerCycle ${caps.maxPilotsPerCycle}`, caps.maxPilotsPerCycle],
  ];
  return demands.map((d) => {
    if (d.pilotsNeeded === null) return { vo: d.vo, submit: 0, reason: 'no demand known (matcher not asked)' };
    const queued = d.pilots.waiting + d.pilots.unknown;
    const wanted = d.pilotsNeeded - queued;
    const demandText = `demand ${d.pilotsNeeded} pilot(s) for ${d.waitingJobs ?? 0} job(s) − ${queued} not started = ${Math.max(0, wanted)}`;
    if (wanted <= 0)
      return { vo: d.vo, submit: 0, reason: d.pilotsNeeded === 0 ? 'no waiting job fits this queue' : demandText };
    let submit = wanted;
    let limitedBy = '';
    for (const [text, room] of limits) {
      if (room < submit) {
        submit = Math.max(0, room);
        limitedBy = text;
      }
    }
    // What this VO takes is no longer there for the next one.
    for (const limit of limits) limit[1] -= submit;
    return { vo: d.vo, submit, reason: limitedBy ? `${demandText}; limited by ${limitedBy}` : demandText };
  });
}
