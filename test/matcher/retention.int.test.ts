/**
 * The retention sweep of a real matcher, on a clock the test moves: finished jobs go after their
 * cutoff with everything kept about them, their sandbox files too once nothing names them, and old
 * pilot logs; jobs still waiting and the sandboxes they name stay. The options are checked at start.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { compileRetention } from '../../matcher/maintenance/retention-sweeper.ts';
import { PilothouseError } from '../../shared/errors.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';

const DAY_MS = 86_400_000;
const clock = { offsetMs: 0, nowMs: () => Date.now() + clock.offsetMs };
let m: TestMatcher;

before(async () => {
  m = await startTestMatcher({ clock, raw: { purgeFinalJobsAfterDays: '30', purgeUnusedSandboxesAfterDays: '2' } });
});
after(() => m.close());

async function upload(text: string): Promise<string> {
  const bytes = Buffer.from(text);
  const hex = createHash('sha256').update(bytes).digest('hex');
  const put = await m.api('PUT', `/api/sandboxes/sha256:${hex}`, {
    token: await m.userToken('alice'),
    body: bytes,
    contentType: 'application/gzip',
  });
  assert.equal(put.status, 201, JSON.stringify(put.body));
  return hex;
}
const sandboxFile = (hex: string) => path.join(m.dataDir, 'sandboxes', hex.slice(0, 2), `${hex}.tar.gz`);

it('purges finished jobs, then the sandboxes only they named, and old pilot logs; keeps what is in play', async () => {
  let token = await m.userToken('alice');
  const shared = await upload('input of both jobs');
  const onlyKilled = await upload('input of the killed job only');
  const submit = async (refs: string[]) =>
    (
      await m.api('POST', '/api/jobs', {
        token,
        json: { executable: '/bin/true', inputSandbox: refs.map((hex) => `sha256:${hex}`) },
      })
    ).body.jobIds[0] as number;
  const killed = await submit([shared, onlyKilled]);
  const waiting = await submit([shared]);
  assert.equal((await m.api('POST', `/api/jobs/${killed}/kill`, { token })).status, 200);
  await m.matcher.pilotActivity.appendLogs('old-pilot', [{ seq: 1, line: 'hello' }], 0, new Date().toISOString());

  assert.deepEqual(await m.matcher.sweepRetention(), { jobs: 0, sandboxes: 0, pilotLogs: 0 }, 'nothing is old yet');
  clock.offsetMs = 31 * DAY_MS;
  assert.deepEqual(await m.matcher.sweepRetention(), { jobs: 1, sandboxes: 1, pilotLogs: 1 });
  token = await m.userToken('alice'); // the first one expired with the month that went by

  assert.equal((await m.api('GET', `/api/jobs/${killed}`, { token })).status, 404);
  assert.equal((await m.api('GET', `/api/jobs/${waiting}`, { token })).body.status, 'Waiting');
  assert.equal(existsSync(sandboxFile(onlyKilled)), false, "the killed job's own input is deleted");
  assert.equal(existsSync(sandboxFile(shared)), true, 'the waiting job still names the shared one');
  const missing = await m.api('POST', '/api/sandboxes/missing', {
    token,
    json: { sandboxes: [`sha256:${shared}`, `sha256:${onlyKilled}`] },
  });
  assert.deepEqual(missing.body.missing, [`sha256:${onlyKilled}`], 'a client is told to upload it again');
  assert.equal((await m.matcher.pilotActivity.readLogs('old-pilot', { afterSeq: 0, limit: 10 })).lines.length, 0);
});

it('retention options are checked: days above 0 or never', () => {
  assert.equal(compileRetention({ purgeFinalJobsAfterDays: 'never' }).finalJobsDays, null);
  assert.equal(compileRetention({ purgeDeletedJobsAfterDays: '0.5' }).deletedJobsDays, 0.5);
  assert.equal(compileRetention({}).finalJobsDays, 90);
  for (const bad of ['0', '-1', 'soon', '1e9']) {
    assert.throws(
      () => compileRetention({ purgeUnusedSandboxesAfterDays: bad }),
      (error: unknown) => error instanceof PilothouseError && error.code === 'CONFIG_INVALID',
      bad,
    );
  }
});
