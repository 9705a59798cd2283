/** Injected time source: components never call Date.now() directly, so tests can drive time. */
export interface Clock {
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now() };

export function isoNow(clock: Clock): string {
  return new Date(clock.nowMs()).toISOString();
}
