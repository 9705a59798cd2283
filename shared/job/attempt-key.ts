/** One attempt of one job as a map or set key: attempts of the same job are different keys. */
export function attemptKey(jobId: number, attempt: number): string {
  return `${jobId}:${attempt}`;
}
