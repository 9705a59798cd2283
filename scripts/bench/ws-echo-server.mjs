// A trivial WebSocket server for the benchmark's baseline: answers every frame with a match-sized
// frame (~1.2 KB of JSON). Prints its port on stdout. No matching, no store, no validation.
import { WebSocketServer } from 'ws';

const reply = JSON.stringify({
  type: 'match',
  v: 1,
  offerId: 'o1',
  matchSeq: 1,
  job: {
    jobId: 1,
    attempt: 1,
    owner: 'lbprods',
    group: 'lhcb_mc',
    vo: 'lhcb',
    cores: 1,
    jobToken: 'x'.repeat(400),
    description: { executable: '/bin/true', arguments: [], environment: {}, padding: 'y'.repeat(500) },
  },
});
const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
server.on('connection', (ws) => ws.on('message', () => ws.send(reply)));
server.on('listening', () => process.stdout.write(`${server.address().port}\n`));
