/**
 * A frame flood against a real `pilothouse server` process: eight connections send pilot log frames
 * (16 KiB each) and small heartbeats as fast as the matcher takes them, reconnecting whenever they are
 * cut off, for a fixed number of frames. The matcher's resident memory (from /proc) stays within a
 * bound, the flooders are cut off with RATE_LIMITED, and a well-behaved pilot is served during it.
 * The frame rate limit is set to 200 frames/s: frames are counted as they are read, and a matcher
 * that reads only as fast as it handles (TCP pushes back) may, on a loaded machine, take fewer than
 * the default 1,000 a second, which no flooder could then exceed.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { runCli } from '../helpers/cli-process.ts';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { NODE, RawPilot, resources } from '../helpers/raw-pilot.ts';

const FLOODERS = 8;
const FRAMES_PER_FLOODER = 6_000;
/** Growth of the matcher's RSS over the flood that counts as bounded (its baseline is ~100 MiB). */
const RSS_GROWTH_LIMIT_MB = 150;

let dir: string;
let server: ServerProcess;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ph-flood-'));
  server = await startServerProcess({ dataDir: path.join(dir, 'data'), args: ['--max-frames-per-sec', '200'] });
});
after(async () => {
  server.child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

async function rssMB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

const pilotToken = async () =>
  (
    await runCli(['token', 'issue', '--data-dir', path.join(dir, 'data'), '--kind', 'pilot', '--vo', 'local'])
  ).stdout.trim();

const logFrame = (ref: number) =>
  JSON.stringify({
    type: 'log',
    v: 1,
    ref,
    lines: Array.from({ length: 100 }, (_, i) => ({ seq: ref * 100 + i, line: `{"msg":"${'f'.repeat(150)}"}` })),
  });
const heartbeat = (ref: number) => JSON.stringify({ type: 'heartbeat', v: 1, ref, jobs: [] });

/** Sends `frames` frames over as many connections as it takes; returns how each connection ended. */
async function flood(token: string, stamp: string, frames: number): Promise<string[]> {
  const endings: string[] = [];
  let sent = 0;
  while (sent < frames) {
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/api/pilots/connect`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const closed = once(ws, 'close').then(([code, reason]) => `${code} ${String(reason)}`);
    ws.on('error', () => undefined);
    ws.on('message', () => undefined);
    const opened = await Promise.race([once(ws, 'open').then(() => true), closed.then(() => false)]);
    if (!opened) {
      endings.push(await closed);
      continue;
    }
    ws.send(
      JSON.stringify({
        type: 'hello',
        v: 1,
        pilotStamp: stamp,
        pilotVersion: 'flood',
        site: 'Site.F',
        ce: null,
        queue: null,
        node: NODE,
      }),
    );
    while (ws.readyState === WebSocket.OPEN && sent < frames) {
      // Only as fast as the matcher reads: what piles up must be on the matcher's side, not ours.
      if (ws.bufferedAmount > 1024 * 1024) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        continue;
      }
      ws.send(sent % 4 === 0 ? logFrame(sent + 1) : heartbeat(sent + 1));
      sent += 1;
      if (sent % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    if (ws.readyState === WebSocket.OPEN) ws.close();
    endings.push(await closed);
  }
  return endings;
}

it('flood - the matcher RSS stays bounded, flooders are cut off, a pilot is served meanwhile', async (t) => {
  const pid = server.child.pid as number;
  const admin = (await readFile(path.join(dir, 'data', 'admin.token'), 'utf8')).trim();
  const submit = async () => {
    const response = await fetch(`${server.url}/api/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ executable: '/bin/true', requirements: { sites: ['Site.OK'] } }),
    });
    assert.equal(response.status, 201);
    return ((await response.json()) as { jobIds: number[] }).jobIds[0] as number;
  };
  // Warm up (one match end to end) before the baseline.
  const patient = await RawPilot.connect(server.url, await pilotToken(), { stamp: 'patient', site: 'Site.OK' });
  const first = await submit();
  patient.send({ type: 'offer', offerId: 'w', matchSeq: 0, resources: resources() });
  assert.equal((await patient.next('match')).job.jobId, first);
  const baselineMB = await rssMB(pid);

  let peakMB = baselineMB;
  const sampler = setInterval(() => {
    rssMB(pid).then(
      (mb) => (peakMB = Math.max(peakMB, mb)),
      () => undefined,
    );
  }, 100);
  const tokens = await Promise.all(Array.from({ length: FLOODERS }, pilotToken));
  const flooding = Promise.all(tokens.map((token, i) => flood(token, `flooder-${i}`, FRAMES_PER_FLOODER)));
  // Served while the flood runs.
  const during = await submit();
  patient.send({ type: 'offer', offerId: 'd', matchSeq: 1, resources: resources() });
  assert.equal((await patient.next('match')).job.jobId, during);
  const endings = (await flooding).flat();
  clearInterval(sampler);
  await patient.close();

  const cutOff = endings.filter((e) => e === '1008 RATE_LIMITED').length;
  t.diagnostic(
    `RSS baseline ${baselineMB.toFixed(0)} MiB, peak ${peakMB.toFixed(0)} MiB; ${endings.length} connections, ${cutOff} cut off for rate`,
  );
  assert.ok(cutOff >= 1, `endings: ${[...new Set(endings)].join(', ')}`);
  assert.ok(peakMB - baselineMB < RSS_GROWTH_LIMIT_MB, `RSS grew from ${baselineMB} to ${peakMB} MiB`);
  assert.equal(server.child.exitCode, null, 'the matcher is still running');
});
