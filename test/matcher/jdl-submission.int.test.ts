/**
 * JDL over REST: a DIRAC JDL posted as text/x-jdl, or as `{jdl, inputSandbox}` JSON, is expanded by
 * the matcher and stored as native jobs, all or nothing; what cannot be a job is refused with a code
 * (and the line and column for a malformed file). And the sandbox lookup a client makes before
 * uploading: which of its sandboxes the matcher lacks for its VO.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DEFAULT_LIMITS } from '../../matcher/limits.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';

let m: TestMatcher;
before(async () => {
  m = await startTestMatcher({ config: { limits: { ...DEFAULT_LIMITS, maxJobsPerSubmission: 50 } } });
});
after(() => m.close());

const fixture = (name: string) => readFile(new URL(`../fixtures/jdl/${name}`, import.meta.url), 'utf8');
const postJdl = async (jdl: string, contentType = 'text/x-jdl') =>
  m.api('POST', '/api/jobs', { body: jdl, contentType });
const countJobs = async () => (await m.api('POST', '/api/jobs/search', { json: { perPage: 1 } })).body.total as number;

it('jdl over REST - text/x-jdl becomes native jobs with what DIRAC would run', async () => {
  const submitted = await postJdl(await fixture('simple.jdl'));
  assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
  const job = (await m.api('GET', `/api/jobs/${submitted.body.jobIds[0]}`)).body;
  assert.deepEqual(
    [job.name, job.description.executable, job.description.arguments, job.description.stdout],
    ['Simple_Job', '/bin/ls', ['-ltr'], 'StdOut'],
  );
});

it('jdl over REST - a parametric JDL is one all-or-nothing submission, with its warnings', async () => {
  const before = await countJobs();
  const jdl = 'Executable = "/bin/echo"; Arguments = "%s"; Parameters = 20; OutputSE = "DIRAC-USER";';
  const submitted = await postJdl(jdl, 'application/x-jdl');
  assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
  assert.equal(submitted.body.jobIds.length, 20);
  assert.match(submitted.body.warnings[0], /OutputSE has no effect/);
  const over = await postJdl('Executable = "/bin/echo"; Parameters = 51;');
  assert.deepEqual([over.status, over.body.error.code], [413, 'SUBMISSION_TOO_LARGE']);
  assert.equal(await countJobs(), before + 20, 'the refused expansion stored nothing');
});

it('jdl over REST - malformed JDL, local input files and unknown sandboxes are refused with codes', async () => {
  const before = await countJobs();
  const malformed = await postJdl('Executable = "/bin/ls"\nArguments = "-l";');
  assert.deepEqual([malformed.status, malformed.body.error.code], [400, 'JDL_INVALID']);
  assert.match(malformed.body.error.message, /^JDL:2:1: /);
  const local = await postJdl(await fixture('input-and-output-sandbox.jdl'));
  assert.deepEqual([local.status, local.body.error.code], [400, 'JDL_INVALID']);
  assert.match(local.body.error.message, /local files \(testJob\.sh\)/);
  const ghost = `sha256:${'0'.repeat(64)}`;
  const unknown = await m.api('POST', '/api/jobs', {
    json: { jdl: await fixture('input-and-output-sandbox.jdl'), inputSandbox: [ghost] },
  });
  assert.deepEqual([unknown.status, unknown.body.error.code], [400, 'VALIDATION_FAILED']);
  const priority = await postJdl('Executable = "a"; Priority = 11;');
  assert.deepEqual([priority.status, priority.body.error.code], [400, 'JDL_INVALID']);
  const plain = await postJdl('Executable = "a";', 'text/plain');
  assert.deepEqual([plain.status, plain.body.error.code], [415, 'UNSUPPORTED_MEDIA_TYPE']);
  assert.equal(await countJobs(), before, 'nothing stored');
});

it('sandboxes - the lookup names what the caller must upload, per VO; a JDL envelope then uses the upload', async () => {
  const bytes = Buffer.from('not really a tarball, the matcher only hashes it');
  const ref = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const missing = async (token?: string) =>
    (await m.api('POST', '/api/sandboxes/missing', { json: { sandboxes: [ref] }, ...(token && { token }) })).body
      .missing;
  assert.deepEqual(await missing(), [ref]);
  const put = await m.api('PUT', `/api/sandboxes/${ref}`, { body: bytes, contentType: 'application/gzip' });
  assert.equal(put.status, 201, JSON.stringify(put.body));
  assert.deepEqual(await missing(), []);
  assert.deepEqual(await missing(await m.userToken('someone', 'othervo')), [ref], 'stored for another VO only');
  const bad = await m.api('POST', '/api/sandboxes/missing', { json: { sandboxes: ['sha256:xyz'] } });
  assert.deepEqual([bad.status, bad.body.error.code], [400, 'VALIDATION_FAILED']);

  const submitted = await m.api('POST', '/api/jobs', {
    json: { jdl: await fixture('input-and-output-sandbox.jdl'), inputSandbox: [ref] },
  });
  assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
  const job = (await m.api('GET', `/api/jobs/${submitted.body.jobIds[0]}`)).body;
  assert.deepEqual([job.description.executable, job.description.inputSandbox], ['./testJob.sh', [ref]]);
});
