/** How times read in the views: ISO without the T and the fraction, '–' when there is none. */
export const shortTime = (iso: string | null): string => (iso ? iso.replace('T', ' ').slice(0, 19) : '–');

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
/** Fields every line of a pilot's log repeats (its bound context): left out when shown. */
const CONTEXT_FIELDS = new Set([
  'level',
  'time',
  'msg',
  'component',
  'pilotStamp',
  'pilotId',
  'site',
  'pid',
  'hostname',
]);

/** A pino JSON line as a person reads it: `21:04:26.351 INFO job started jobId=3 attempt=1`. */
export function readableLogLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (record === null || typeof record !== 'object') return line;
  const time = typeof record.time === 'string' ? record.time.slice(11, 23) : '';
  const level = LEVEL_NAMES[Number(record.level)] ?? String(record.level ?? '');
  const fields = Object.entries(record)
    .filter(([name]) => !CONTEXT_FIELDS.has(name))
    .map(([name, value]) => `${name}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  return [time, level.padEnd(5), String(record.msg ?? ''), ...fields].join(' ');
}
