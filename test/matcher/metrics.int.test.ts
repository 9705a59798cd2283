/**
 * /metrics on a real matcher, read with a Prometheus text-format parser: job counts by status and VO
 * equal the store's, task queues, parked offers and connected pilots match what the test set up, and
 * HTTP requests, WebSocket frames, match attempts and store commits are counted. /readyz answers, and
 * every HTTP answer, refusals included, carries a request id.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

let m: TestMatcher;
let pilot: RawPilot;
before(async () => {
  m = await startTestMatcher();
});
after(async () => {
  pilot?.close();
  await m.close();
});

/** The scrape, checked by Prometheus's own promtool (format and naming), and parsed. */
async function scrape() {
  const response = await fetch(`${m.url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await response.text();
  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(promtool.status, 0, `promtool check metrics: ${promtool.stdout}${promtool.stderr}`);
  return { text, families: parsePrometheusTextFormat(text) };
}

/** A histogram's observation count for one label set (read from the text: the parser drops it). */
function histogramCount(text: string, name: string, labels = ''): number {
  const line = new RegExp(`^${name}_count${labels ? `\\{${labels}\\}` : ''} (\\S+)$`, 'm').exec(text);
  return Number(line?.[1] ?? NaN);
}

it('the numbers match the store and what happened', async () => {
  const alice = await m.userToken('alice', 'vo-a');
  const carol = await m.userToken('carol', 'vo-b');
  const job = { executable: '/bin/true', requirements: { sites: ['Nowhere.site'] } };
  const aliceIds = (await m.api('POST', '/api/jobs', { token: alice, json: [job, job, job] })).body.jobIds;
  await m.api('POST', '/api/jobs', { token: carol, json: [job, job] });
  await m.api('POST', `/api/jobs/${aliceIds[0]}/kill`, { token: alice });
  // A pilot of a VO with no jobs: its offer is parked.
  pilot = await RawPilot.connect(m.url, await m.pilotToken('vo-c'), { stamp: 'metrics-pilot' });
  pilot.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
  for (let i = 0; i < 100 && m.matcher.matchService.parkedCount === 0; i += 1)
    await new Promise((r) => setImmediate(r));

  const { text, families } = await scrape();
  const family = (name: string) => {
    const found = families.find((f) => f.name === name);
    assert.ok(found, `${name} is exposed`);
    return found;
  };
  const jobs = family('pilothouse_jobs');
  assert.equal(jobs.type, 'GAUGE');
  const exposed = Object.fromEntries(jobs.metrics.map((s) => [`${s.labels?.status}/${s.labels?.vo}`, Number(s.value)]));
  const inStore = await m.matcher.store.summarizeJobs({}, ['status', 'vo']);
  assert.deepEqual(exposed, Object.fromEntries(inStore.map((g) => [`${g.values.status}/${g.values.vo}`, g.count])));
  assert.deepEqual(exposed, { 'Waiting/vo-a': 2, 'Killed/vo-a': 1, 'Waiting/vo-b': 2 });

  const waiting = Object.fromEntries(
    family('pilothouse_task_queue_waiting_jobs').metrics.map((s) => [s.labels?.vo, Number(s.value)]),
  );
  assert.deepEqual(waiting, { 'vo-a': 2, 'vo-b': 2 });
  assert.equal(Number(family('pilothouse_connected_pilots').metrics[0]?.value), 1);
  assert.equal(Number(family('pilothouse_parked_offers').metrics[0]?.value), 1);

  const http = family('pilothouse_http_requests_total').metrics;
  const count = (route: string, code: string) =>
    http.filter((s) => s.labels?.route === route && s.labels?.code === code).reduce((n, s) => n + Number(s.value), 0);
  assert.equal(count('/api/jobs', '201'), 2);
  assert.equal(count('/api/jobs/:id/kill', '200'), 1);
  const frames = Object.fromEntries(
    family('pilothouse_websocket_frames_total').metrics.map((s) => [s.labels?.direction, Number(s.value)]),
  );
  assert.ok((frames.in ?? 0) >= 2 && (frames.out ?? 0) >= 1, JSON.stringify(frames));
  assert.equal(family('pilothouse_match_duration_seconds').type, 'HISTOGRAM');
  assert.ok(histogramCount(text, 'pilothouse_match_duration_seconds', 'outcome="none"') >= 1, 'match attempts');
  assert.ok(histogramCount(text, 'pilothouse_store_commit_duration_seconds') >= 1, 'store commits are timed');
  assert.ok(
    families.some((f) => f.name.startsWith('pilothouse_process_')),
    'process metrics too',
  );
});

it('/readyz answers while the matcher takes work', async () => {
  const ready = await fetch(`${m.url}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal(((await ready.json()) as { status: string }).status, 'ready');
});

it('every answer carries a request id: the client one when it is sane, else a new one', async () => {
  const mine = await fetch(`${m.url}/api/jobs/search`, {
    method: 'POST',
    headers: { authorization: `Bearer ${m.adminToken}`, 'x-request-id': 'trace-42.a:b' },
    body: '{}',
  });
  assert.equal(mine.headers.get('x-request-id'), 'trace-42.a:b');
  const refused = await fetch(`${m.url}/api/jobs/1`, { headers: { 'x-request-id': 'bad id with spaces' } });
  assert.equal(refused.status, 401);
  assert.match(refused.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  const unknown = await fetch(`${m.url}/nowhere`);
  assert.match(unknown.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
});
