/** Builders for test jobs and offers. */
import { parseJobDescription, type JobDescriptionInput } from '../../shared/job/description.ts';
import type { JobOwnership } from '../../shared/job/model.ts';
import type { OfferResources } from '../../shared/protocol/messages.ts';
import { taskQueueDefinition } from '../../matcher/matching/task-queue-key.ts';
import type { Offer } from '../../matcher/matching/fit.ts';
import type { NewJob } from '../../matcher/store/job-store.ts';

export const alice: JobOwnership = { vo: 'vo-a', group: 'vo-a_user', owner: 'alice' };
export const bob: JobOwnership = { vo: 'vo-a', group: 'vo-a_user', owner: 'bob' };
export const carol: JobOwnership = { vo: 'vo-b', group: 'vo-b_user', owner: 'carol' };

export function newJob(ownership: JobOwnership, input: Partial<JobDescriptionInput> = {}): NewJob {
  const description = parseJobDescription({ executable: '/bin/true', ...input });
  return { ownership, description, taskQueue: taskQueueDefinition(ownership, description) };
}

export function offer(vo: string, resources: Partial<OfferResources> = {}, site = 'Site.A'): Offer {
  return {
    vo,
    site,
    ce: 'ce.example.org',
    queue: 'default',
    resources: { cores: 1, memoryMB: 4096, wallTimeSec: null, tags: [], ...resources },
  };
}
