/**
 * A matcher asked to stop: pilots are told to reconnect elsewhere (close 1012 SHUTTING_DOWN) and their
 * jobs are left Running (the pilots come back and carry on), and a
 * submission already under way finishes its write before the store closes (seen by a matcher started
 * again on the same data directory).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { startTestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

it('shutdown - pilots get 1012 SHUTTING_DOWN, their jobs stay Running; an in-flight submission completes and is kept', async () => {
  const m = await startTestMatcher();
  const pilot = await RawPilot.connect(m.url, await m.pilotToken('local'), { stamp: 'leaving' });
  const pilotClosed = once(pilot.ws, 'close');
  const running = (await m.api('POST', '/api/jobs', { json: { executable: 'sleep', arguments: ['600'] } })).body
    .jobIds[0] as number;
  pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
  await pilot.next('match');
  pilot.send({
    type: 'job.status',
    ref: 1,
    jobId: running,
    attempt: 1,
    at: new Date().toISOString(),
    status: 'Running',
  });
  await pilot.next('ack');

  const body = Buffer.from(JSON.stringify({ name: 'in-flight', executable: '/bin/true' }));
  const req = request(`${m.url}/api/jobs`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${m.adminToken}`,
      'content-type': 'application/json',
      'content-length': body.length,
    },
  });
  const answered = once(req, 'response');
  const arrived = once(m.matcher.httpServer, 'request');
  req.write(body.subarray(0, 10));
  await arrived; // the matcher is handling it, half its body still to come

  const stopped = m.matcher.stop();
  const [code, reason] = (await pilotClosed) as [number, Buffer];
  assert.deepEqual([code, String(reason)], [1012, 'SHUTTING_DOWN']);
  req.end(body.subarray(10));
  const [response] = (await answered) as [import('node:http').IncomingMessage];
  let text = '';
  for await (const chunk of response) text += String(chunk);
  assert.equal(response.statusCode, 201, text);
  const jobId = (JSON.parse(text) as { jobIds: number[] }).jobIds[0];
  await stopped;

  const again = await startTestMatcher({ dataDir: m.dataDir });
  try {
    const job = await again.api('GET', `/api/jobs/${jobId}`);
    assert.equal(job.status, 200);
    assert.equal(job.body.description.name, 'in-flight');
    const held = (await again.api('GET', `/api/jobs/${running}`)).body;
    assert.equal(held.status, 'Running', 'a matcher closing its own connections does not stall their jobs');
  } finally {
    await again.close();
  }
});
