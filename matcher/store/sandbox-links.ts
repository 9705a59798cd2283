/** What both stores need to link jobs to the sandboxes they name. */
import { PilothouseError } from '../../shared/errors.ts';
import type { NewJob } from './job-store.ts';

export const SHA256_PREFIX = 'sha256:';

/** The distinct input sandboxes (hex checksums) of a submission. */
export function inputSandboxesOf(jobs: readonly NewJob[]): string[] {
  return sandboxChecksumsOf(jobs.map((job) => job.description));
}

/** The distinct input sandboxes (hex checksums) named by job descriptions (a submission's, a schedule's). */
export function sandboxChecksumsOf(descriptions: readonly { inputSandbox: readonly string[] }[]): string[] {
  const all = new Set<string>();
  for (const description of descriptions) {
    for (const ref of description.inputSandbox) all.add(ref.slice(SHA256_PREFIX.length));
  }
  return [...all];
}

/** A sandbox the submission names was purged between the check and the write. */
export function sandboxGone(sha256: string): PilothouseError {
  return new PilothouseError(
    'VALIDATION_FAILED',
    `input sandbox sha256:${sha256} is no longer stored (unused sandboxes are purged): upload it again`,
    { field: 'inputSandbox' },
  );
}
