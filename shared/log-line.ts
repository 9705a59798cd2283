/**
 * A pilot's pino JSON log line as a person reads it: `time LEVEL message key=value...`, without the
 * context every line of that pilot repeats (its stamp, site, node). Lines that are not JSON read as
 * they are. Used by `pilothouse pilots logs` and by the web monitor's pilot page.
 */
const PINO_LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
/** Fields every pilot line carries; the rest are the line's own context. */
const COMMON_FIELDS = new Set([
  'level',
  'time',
  'msg',
  'component',
  'pilotStamp',
  'site',
  'pilotId',
  'pid',
  'hostname',
]);

/** `timeOfDay`: `21:04:26.351` instead of the whole ISO time (a page that shows one day's lines). */
export function formatLogLine(line: string, options: { timeOfDay?: boolean } = {}): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof record !== 'object' || record === null) return line;
  const level =
    typeof record.level === 'number' ? (PINO_LEVELS[record.level] ?? String(record.level)) : String(record.level ?? '');
  const time = String(record.time ?? '');
  const extras = Object.entries(record)
    .filter(([name]) => !COMMON_FIELDS.has(name))
    .map(([name, value]) => `${name}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  return [options.timeOfDay ? time.slice(11, 23) : time, level.padEnd(5), String(record.msg ?? ''), ...extras]
    .join(' ')
    .trimEnd();
}
