/**
 * Job tokens are bound to one job and one attempt, and die with the attempt: once the job finished,
 * was killed, or was rescheduled (a new attempt), its old token is refused as TOKEN_ATTEMPT_ENDED.
 */
import { PilothouseError } from '../../shared/errors.ts';
import { FINAL_STATUSES } from '../../shared/job/status.ts';
import type { Principal } from '../../shared/auth/claims.ts';
import type { JobView } from '../../shared/job/model.ts';
import type { JobStore } from '../store/job-store.ts';

export async function liveJobOfToken(store: Pick<JobStore, 'getJob'>, principal: Principal): Promise<JobView> {
  if (principal.kind !== 'job' || principal.jobId === undefined) {
    throw new PilothouseError('FORBIDDEN', 'this route needs a job token');
  }
  const job = await store.getJob(principal.jobId);
  if (!job || job.vo !== principal.vo || job.attempt !== principal.attempt || FINAL_STATUSES.has(job.status)) {
    throw new PilothouseError('TOKEN_ATTEMPT_ENDED', 'the job token belongs to an attempt that has ended', {
      jobId: principal.jobId,
    });
  }
  return job;
}
