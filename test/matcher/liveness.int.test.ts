/**
 * WebSocket liveness on the matcher's side, over real sockets: a pilot whose node froze (its TCP
 * connection up, no pong to the matcher's pings) is dropped within the configured timeout, its parked
 * offer goes with it, and a job submitted afterwards waits for a live pilot instead of being pushed into
 * the dead socket. A pilot that only sits idle but answers pings is kept.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createLogger } from '../../shared/logger.ts';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';
import { RawPilot, resources } from '../helpers/raw-pilot.ts';

let m: TestMatcher;
const logs: Record<string, unknown>[] = [];

before(async () => {
  const logger = createLogger({
    component: 'matcher',
    level: 'info',
    destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  });
  m = await startTestMatcher({ logger, config: { pilotLiveness: { pingIntervalMs: 100, timeoutMs: 400 } } });
});
after(() => m.close());

it('liveness - a frozen pilot is dropped with its parked offer; an idle one that answers pings stays', async () => {
  const token = await m.pilotToken('local');
  const frozen = await RawPilot.connect(m.url, token, { stamp: 'frozen' }, { autoPong: false });
  const idle = await RawPilot.connect(m.url, token, { stamp: 'idle' });
  try {
    frozen.send({ type: 'offer', offerId: 'o1', matchSeq: 0, resources: resources() });
    await frozen.next('parked');
    const [code] = (await once(frozen.ws, 'close')) as [number];
    assert.equal(code, 1006, 'terminated, not closed politely: the node is not listening');
    const dropped = logs.filter((r) => r.msg === 'pilot connection unresponsive, dropped');
    assert.equal(dropped.length, 1);
    assert.equal(dropped[0]?.pilotId, 'frozen', 'the log names the pilot');

    // Three more rounds of pings: the idle pilot answers them and stays.
    for (let i = 0; i < 3; i += 1) await once(idle.ws, 'ping');
    assert.equal(idle.ws.readyState, idle.ws.OPEN);

    const submitted = await m.api('POST', '/api/jobs', { json: { executable: 'true' } });
    const [jobId] = submitted.body.jobIds as number[];
    assert.equal((await m.api('GET', `/api/jobs/${jobId}`)).body.status, 'Waiting', 'not pushed to the dropped pilot');
    idle.send({ type: 'offer', offerId: 'o2', matchSeq: 0, resources: resources() });
    assert.equal((await idle.next('match')).job.jobId, jobId);
  } finally {
    await frozen.close();
    await idle.close();
  }
});
