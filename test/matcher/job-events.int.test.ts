/**
 * `GET /api/events` over real HTTP against a real matcher, with a pilot over a WebSocket moving jobs:
 * a subscriber hears each change of the jobs it may see (its own; the VO's for a job administrator)
 * and never another user's; a reconnection with Last-Event-ID resumes after the last event seen.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

let m: TestMatcher;
before(async () => {
  m = await startTestMatcher();
});
after(() => m.close());

interface Event {
  id: string | null;
  event: string;
  data: { jobs: { id: number; status: string }[] };
}

/** Reads events until `until` holds of those read so far, then closes the stream. */
async function subscribe(
  token: string,
  until: (events: Event[]) => boolean,
  headers: Record<string, string> = {},
  query = '',
): Promise<Event[]> {
  const stop = new AbortController();
  const response = await fetch(`${m.url}/api/events${query}`, {
    headers: { authorization: `Bearer ${token}`, ...headers },
    signal: stop.signal,
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
  const events: Event[] = [];
  const reader = (response.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(
          block
            .split('\n')
            .filter((line) => !line.startsWith(':') && line.includes(':'))
            .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]),
        );
        if (fields.event)
          events.push({ id: fields.id ?? null, event: fields.event, data: JSON.parse(fields.data ?? '{}') });
      }
    }
  } finally {
    stop.abort();
  }
  return events;
}

const statusesOf = (events: Event[], jobId: number) =>
  events.flatMap((e) => e.data.jobs.filter((job) => job.id === jobId).map((job) => job.status));

describe('live job events', () => {
  it('a user hears their own jobs change, a job administrator the VO, nobody another user', async () => {
    const alice = await m.userToken('alice', 'vo-a');
    const bob = await m.userToken('bob', 'vo-a');
    const admin = await m.userToken('jadmin', 'vo-a', ['JobAdministrator']);
    const since = new Date(Date.now() - 1000).toISOString();
    const [aliceJob] = (await m.api('POST', '/api/jobs', { token: alice, json: { executable: 'true' } })).body.jobIds;
    const [bobJob] = (await m.api('POST', '/api/jobs', { token: bob, json: { executable: 'true' } })).body.jobIds;
    const heardByAlice = subscribe(
      alice,
      (events) => statusesOf(events, aliceJob).includes('Done'),
      {},
      `?since=${since}`,
    );
    const heardByAdmin = subscribe(
      admin,
      (events) => statusesOf(events, aliceJob).includes('Done') && statusesOf(events, bobJob).includes('Done'),
      {},
      `?since=${since}`,
    );

    const pilot = await RawPilot.connect(m.url, await m.pilotToken('vo-a'), { stamp: 'events-pilot' });
    let ref = 0;
    for (let seq = 0; seq < 2; seq += 1) {
      pilot.send({ type: 'offer', offerId: `o${seq}`, matchSeq: seq, resources: resources() });
      const { job } = await pilot.next('match');
      for (const status of ['Running', 'Done'] as const) {
        ref += 1;
        pilot.send({
          type: 'job.status',
          ref,
          jobId: job.jobId,
          attempt: job.attempt,
          at: new Date().toISOString(),
          status,
        });
        await pilot.next('ack');
      }
    }
    await pilot.close();

    const aliceEvents = await heardByAlice;
    assert.ok(statusesOf(aliceEvents, aliceJob).includes('Done'));
    const seenByAlice = new Set(aliceEvents.flatMap((e) => e.data.jobs.map((job) => job.id)));
    assert.ok(!seenByAlice.has(bobJob), "alice never hears of bob's job");
    const adminEvents = await heardByAdmin;
    assert.ok(statusesOf(adminEvents, bobJob).includes('Done'));

    // Resuming from the first event's id still brings the job's last change (a lag window may repeat earlier ones).
    const firstId = aliceEvents[0]?.id as string;
    assert.ok(!Number.isNaN(Date.parse(firstId)), 'event ids are the cursor time');
    const resumed = await subscribe(alice, (events) => statusesOf(events, aliceJob).includes('Done'), {
      'last-event-id': firstId,
    });
    assert.deepEqual(statusesOf(resumed, aliceJob).at(-1), 'Done');
    assert.ok(resumed.every((event) => event.data.jobs.every((job) => job.id !== bobJob)));
  });

  it('a bad since is BAD_QUERY; a pilot token is refused', async () => {
    const alice = await m.userToken('alice', 'vo-a');
    const bad = await m.api('GET', '/api/events?since=yesterday', { token: alice });
    assert.deepEqual([bad.status, bad.body.error.code], [400, 'BAD_QUERY']);
    const pilot = await m.api('GET', '/api/events', { token: await m.pilotToken('vo-a') });
    assert.equal(pilot.status, 403);
  });
});
