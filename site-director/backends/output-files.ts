/**
 * Reads the end of a pilot's stdout and stderr files where its batch system left them, in ONE command
 * on the CE side (local or over SSH), framed by a random boundary so that the contents cannot be
 * mistaken for the framing.
 */
import { randomBytes } from 'node:crypto';
import { PilothouseError } from '../../shared/errors.ts';
import type { CommandRunner } from '../transport/command-runner.ts';
import { OUTPUT_TAIL_BYTES, type FetchedOutput } from './backend.ts';

const SCRIPT = `
b=$1; n=$2; out=$3; err=$4
[ -e "$out" ] || [ -e "$err" ] || exit 3
for f in "$out" "$err"; do
  size=0; [ -f "$f" ] && size=$(wc -c <"$f")
  echo "$b file $size"
  [ -f "$f" ] && tail -c "$n" "$f"
  echo
done
echo "$b end"`;

/** null when neither file exists (any more). */
export async function readOutputFiles(
  runner: CommandRunner,
  files: { stdout: string; stderr: string },
  options: { timeoutMs: number; signal: AbortSignal },
): Promise<FetchedOutput | null> {
  const boundary = randomBytes(16).toString('hex');
  const result = await runner.sh(SCRIPT, [boundary, String(OUTPUT_TAIL_BYTES), files.stdout, files.stderr], options);
  if (result.exitCode === 3) return null;
  return parseFramedOutput(result.stdout, boundary, runner.where);
}

/** Parses `<b> file SIZE\\n<bytes>\\n<b> file SIZE\\n<bytes>\\n<b> end` (stdout first, then stderr). */
export function parseFramedOutput(text: string, boundary: string, where: string): FetchedOutput {
  const marks = [...text.matchAll(new RegExp(`^${boundary} (file (\\d+)|end)$`, 'gm'))];
  const last = marks[marks.length - 1];
  if (marks.length !== 3 || last?.[1] !== 'end') {
    throw new PilothouseError('CE_BAD_ANSWER', `${where}: the pilot output could not be read back`);
  }
  const body = (index: number): string => {
    const mark = marks[index] as RegExpMatchArray;
    const next = marks[index + 1] as RegExpMatchArray;
    const start = (mark.index ?? 0) + mark[0].length + 1;
    // The script prints one newline after each file.
    return text.slice(start, Math.max(start, (next.index ?? start) - 1));
  };
  const sizes = [Number(marks[0]?.[2]), Number(marks[1]?.[2])];
  return { stdout: body(0), stderr: body(1), truncated: sizes.some((size) => size > OUTPUT_TAIL_BYTES) };
}
