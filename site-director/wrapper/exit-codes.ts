/**
 * Exit codes of the pilot wrapper (and of the pilot it runs), so that a site director can say why a
 * pilot never started from nothing but the batch system's exit code. 64-69 are the wrapper's own
 * (BSD sysexits range, which batch systems pass through untouched); 1-3 are the pilot's.
 */
export const WRAPPER_EXIT = {
  noNode: 64,
  noWorkDir: 65,
  bundleDownload: 66,
  bundleChecksum: 67,
  noSecret: 68,
} as const;

const REASONS: Record<number, string> = {
  0: 'the pilot ended normally',
  1: 'the pilot failed (see its output)',
  2: 'the pilot refused its options (bad wrapper or extra arguments)',
  3: "the matcher refused the pilot's credentials (secret spent, expired or revoked)",
  [WRAPPER_EXIT.noNode]: 'no Node.js >= 20 on the worker node',
  [WRAPPER_EXIT.noWorkDir]: 'the wrapper could not make a working directory',
  [WRAPPER_EXIT.bundleDownload]: 'the wrapper could not download the pilot bundle from the matcher',
  [WRAPPER_EXIT.bundleChecksum]: "the downloaded pilot bundle's sha256 did not match",
  [WRAPPER_EXIT.noSecret]: 'the wrapper could not store the pilot secret',
};

/** Why a pilot ended, from the wrapper's exit code (128+N: killed by signal N). */
export function exitReason(exitCode: number): string {
  const known = REASONS[exitCode];
  if (known !== undefined) return `exit code ${exitCode}: ${known}`;
  if (exitCode > 128 && exitCode < 160)
    return `exit code ${exitCode}: the pilot was killed by signal ${exitCode - 128}`;
  return `exit code ${exitCode}: the pilot wrapper ended with an error`;
}
