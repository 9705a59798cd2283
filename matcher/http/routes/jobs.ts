/** Job routes: submit, read, search, output. */
import { z } from 'zod';
import { parseOrThrow } from '../../../shared/validation.ts';
import { PilothouseError } from '../../../shared/errors.ts';
import { isoNow } from '../../../shared/clock.ts';
import {
  jobDescriptionSchema,
  parseJobDescription,
  parseJobDescriptions,
  type JobDescription,
} from '../../../shared/job/description.ts';
import { parseJdl } from '../../../shared/jdl/jdl-job.ts';
import { JOB_STATUSES } from '../../../shared/job/status.ts';
import type { Principal } from '../../../shared/auth/claims.ts';
import type { JobView } from '../../../shared/job/model.ts';
import { canSeeJob, isAdministrator, isJobAdministratorFor } from '../../auth/policy.ts';
import { taskQueueDefinition } from '../../matching/task-queue-key.ts';
import type { NewJob } from '../../store/job-store.ts';
import { contentRange, isJsonBody, readJsonBody, readTextBody, type Route } from '../router.ts';
import { parseId, type RouteDeps } from './context.ts';

export async function loadVisibleJob(
  deps: RouteDeps,
  principal: Principal,
  rawId: string | undefined,
): Promise<JobView> {
  const id = parseId(rawId, 'id');
  const job = await deps.store.getJob(id);
  if (!job) throw new PilothouseError('JOB_NOT_FOUND', `job ${id} does not exist`, { jobId: id });
  if (!canSeeJob(principal, job)) throw new PilothouseError('FORBIDDEN', `job ${id} is not yours`, { jobId: id });
  return job;
}

export function jobRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/jobs',
      policy: 'submitter',
      summary:
        'submit one job or an array of jobs (application/json), or a DIRAC JDL (text/x-jdl, parametric allowed): all or nothing',
      docs: {
        body: z.union([jobDescriptionSchema, z.array(jobDescriptionSchema), jdlEnvelopeSchema]),
        otherBodies: [
          { contentType: 'text/x-jdl', description: 'a DIRAC JDL (parametric allowed), e.g. Executable = "run.sh";' },
        ],
        answer: { status: 201, description: 'the ids of the jobs stored, in order, and any JDL warnings' },
      },
      async handler({ req, principal, logger }) {
        const caller = principal as Principal;
        const contentType = req.headers['content-type'] ?? '';
        let descriptions: JobDescription[];
        let warnings: string[] = [];
        if (JDL_CONTENT.test(contentType)) {
          ({ descriptions, warnings } = descriptionsOfJdl(
            await readTextBody(req, deps.limits.maxSubmitBytes),
            deps.limits.maxJobsPerSubmission,
          ));
        } else if (isJsonBody(req)) {
          const body = await readJsonBody(req, deps.limits.maxSubmitBytes);
          const envelope = jdlEnvelopeSchema.safeParse(body);
          if (envelope.success) {
            ({ descriptions, warnings } = descriptionsOfJdl(
              envelope.data.jdl,
              deps.limits.maxJobsPerSubmission,
              envelope.data.inputSandbox,
            ));
          } else descriptions = parseJobDescriptions(body, { maxJobs: deps.limits.maxJobsPerSubmission });
        } else {
          throw new PilothouseError('UNSUPPORTED_MEDIA_TYPE', 'jobs are submitted as application/json or text/x-jdl');
        }
        const ownership = { vo: caller.vo, group: caller.group, owner: caller.subject };
        await assertInputSandboxesUploaded(deps, caller, descriptions);
        const jobs: NewJob[] = descriptions.map((description) => ({
          ownership,
          description,
          taskQueue: taskQueueDefinition(ownership, description, deps.matchService.policy.jobSharing(ownership.group)),
        }));
        const { jobIds, taskQueueIds } = await deps.store.submitJobs(jobs, isoNow(deps.clock));
        logger.info({ count: jobIds.length, owner: caller.subject, vo: caller.vo }, 'jobs submitted');
        void deps.cluster.jobsWaiting(taskQueueIds);
        return { status: 201, json: warnings.length > 0 ? { jobIds, warnings } : { jobIds } };
      },
    },
    {
      method: 'GET',
      path: '/api/jobs/:id',
      policy: 'user',
      summary: 'a job with its status history',
      async handler({ params, principal }) {
        const job = await loadVisibleJob(deps, principal as Principal, params.id);
        return { status: 200, json: { ...job, history: await deps.store.getJobHistory(job.id) } };
      },
    },
    {
      method: 'GET',
      path: '/api/jobs/:id/logs',
      policy: 'user',
      summary: "a job's status history and its payload's last output (std.out and std.err tails, from heartbeats)",
      async handler({ params, principal }) {
        const job = await loadVisibleJob(deps, principal as Principal, params.id);
        const [history, outputTail] = await Promise.all([
          deps.store.getJobHistory(job.id),
          deps.store.getOutputTail(job.id),
        ]);
        const { id, status, minorStatus, applicationStatus, attempt, site, pilotId } = job;
        return {
          status: 200,
          json: { jobId: id, status, minorStatus, applicationStatus, attempt, site, pilotId, history, outputTail },
        };
      },
    },
    {
      method: 'GET',
      path: '/api/jobs/:id/output',
      policy: 'user',
      summary: "the job's output sandbox (tar.gz)",
      async handler({ params, principal }) {
        const job = await loadVisibleJob(deps, principal as Principal, params.id);
        if (!job.outputSandbox) {
          throw new PilothouseError('SANDBOX_NOT_FOUND', `job ${job.id} has no output sandbox (status ${job.status})`);
        }
        const sha256 = job.outputSandbox.slice('sha256:'.length);
        return {
          status: 200,
          stream: deps.sandboxes.open(sha256),
          headers: { 'content-type': 'application/gzip', 'x-sandbox': job.outputSandbox },
        };
      },
    },
  ];
}

/** Every input sandbox the descriptions name was uploaded in the caller's VO (else VALIDATION_FAILED naming it). */
export async function assertInputSandboxesUploaded(
  deps: RouteDeps,
  caller: Principal,
  descriptions: JobDescription[],
  fieldPrefix = '',
): Promise<void> {
  const bulk = descriptions.length > 1;
  for (const [index, description] of descriptions.entries()) {
    for (const [i, ref] of description.inputSandbox.entries()) {
      const sandbox = await deps.store.getSandbox(ref.slice('sha256:'.length));
      if (!sandbox || sandbox.vo !== caller.vo) {
        const where = bulk ? `${fieldPrefix}[${index}].` : fieldPrefix === '' ? '' : `${fieldPrefix}.`;
        const field = `${where}inputSandbox[${i}]`;
        throw new PilothouseError('VALIDATION_FAILED', `input sandbox ${ref} was never uploaded`, { field });
      }
    }
  }
}

export const JDL_CONTENT = /^(text|application)\/(x-)?jdl\b/i;

/**
 * A JDL in a JSON body: `{jdl, inputSandbox?}`. `inputSandbox` names the uploaded sandboxes that hold
 * the JDL's local input files (packed by the client), added to every job it expands to.
 */
export const jdlEnvelopeSchema = z.strictObject({
  jdl: z.string().min(1),
  inputSandbox: z
    .array(z.string().regex(/^sha256:[0-9a-f]{64}$/))
    .max(100)
    .optional(),
});

/**
 * A JDL sent to the matcher: parsed and expanded here, each job validated as a native description.
 * Local files in its InputSandbox must come packed and uploaded (`packedInputFiles`): the matcher
 * cannot read the client's files (`pilothouse submit job.jdl` packs and uploads them).
 */
export function descriptionsOfJdl(
  text: string,
  maxJobs: number,
  packedInputFiles?: string[],
): { descriptions: JobDescription[]; warnings: string[] } {
  const { jobs, warnings } = parseJdl(text, { maxJobs });
  const local = jobs[0]?.localInputFiles ?? [];
  if (packedInputFiles !== undefined) {
    for (const job of jobs)
      job.description.inputSandbox = [...(job.description.inputSandbox ?? []), ...packedInputFiles];
  } else if (local.length > 0) {
    throw new PilothouseError(
      'JDL_INVALID',
      `InputSandbox names local files (${local.slice(0, 5).join(', ')}): the matcher cannot read them; upload them and name them as sha256:..., or submit with pilothouse submit, which does`,
      { field: 'InputSandbox' },
    );
  }
  const descriptions = jobs.map((job, index) => {
    try {
      return parseJobDescription(job.description);
    } catch (error) {
      const message = error instanceof PilothouseError ? error.message : String(error);
      throw new PilothouseError('JDL_INVALID', `JDL job ${index}: ${message}`, { field: 'JDL' });
    }
  });
  return { descriptions, warnings };
}
