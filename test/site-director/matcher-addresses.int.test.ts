/**
 * A director given several matcher addresses (`--matcher A,B`, replicas without a load balancer):
 * the first one is down (a port nobody listens on), so the director's calls go to the second, and
 * the local pilots it starts, given both addresses, fail over the same way and run the waiting job.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../shared/logger.ts';
import { parseDirectorConfig } from '../../site-director/config/load.ts';
import { buildDirector, type BuiltDirector } from '../../site-director/service.ts';
import { cyclesUntil } from '../helpers/director.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { freePort } from '../helpers/ports.ts';

let m: TestMatcher;
let dir: string;
let built: BuiltDirector;

before(async () => {
  m = await startTestMatcher();
  dir = await mkdtemp(path.join(os.tmpdir(), 'ph-director-addresses-'));
  const config = parseDirectorConfig(
    `
name: addresses
pilot: { idleTimeoutSec: 2 }
sites:
  - name: LCG.Addresses.test
    vos: [lab]
    ces:
      - name: local
        type: local
        queues: [{ name: q, maxCores: 1, memoryMB: 1000, tags: [addr], requiredTags: [addr], maxWaitingPilots: 1, maxPilotsPerCycle: 1 }]
`,
    path.join(dir, 'director.yaml'),
  );
  const down = `http://127.0.0.1:${await freePort()}`;
  built = buildDirector({
    config,
    matcherUrls: [down, m.url],
    tokenFile: m.matcher.adminTokenPath,
    logger: silentLogger(),
  });
});

after(async () => {
  await built.close();
  await m.close();
  await rm(dir, { recursive: true, force: true });
});

it('a director with the first matcher address down works through the next, and so do its pilots', async () => {
  const token = await m.userToken('alice', 'lab');
  const submitted = await m.api('POST', '/api/jobs', {
    token,
    json: { executable: '/bin/true', requirements: { tags: ['addr'], memoryMB: 100, wallTimeSec: 600 } },
  });
  assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
  const [jobId] = submitted.body.jobIds as number[];
  const reports = await cyclesUntil(
    built.director,
    'the job Done',
    async () => (await m.api('GET', `/api/jobs/${jobId}`)).body.status === 'Done',
    { timeoutMs: 60_000, pauseMs: 500 },
  );
  assert.ok(
    reports.every((report) => report.matcherReachable),
    'no cycle paused: the second address answered',
  );
  assert.equal(built.matcher.baseUrl, m.url, 'the address in use is the one that answers');
  const pilots = (await m.api('GET', '/api/pilots?site=LCG.Addresses.test')).body.pilots as { jobsMatched: number }[];
  assert.ok(
    pilots.some((pilot) => pilot.jobsMatched === 1),
    'a pilot given both addresses reached the matcher',
  );
});
