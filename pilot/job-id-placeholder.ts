/**
 * DIRAC's `%j`: a JDL may name the job's own id in its arguments, file names and environment
 * (`Arguments = "run_%j.cfg"`, `StdOutput = "job_%j.out"`). The id exists only once the matcher has
 * stored the job, so the pilot puts it in before it runs the payload.
 */
import type { JobDescription } from '../shared/job/description.ts';

export function withJobId(description: JobDescription, jobId: number): JobDescription {
  const id = String(jobId);
  const fill = (text: string) => text.replaceAll('%j', id);
  return {
    ...description,
    executable: fill(description.executable),
    arguments: description.arguments.map(fill),
    environment: Object.fromEntries(
      Object.entries(description.environment).map(([name, value]) => [name, fill(value)]),
    ),
    outputSandbox: description.outputSandbox.map(fill),
    stdout: fill(description.stdout),
    stderr: fill(description.stderr),
  };
}
