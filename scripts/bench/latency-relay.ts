/**
 * A TCP relay that holds every chunk `oneWayMs` before passing it on, in both directions: a matcher
 * that far away, for benchmarks on one machine (no netem here). Connection set-up itself is local;
 * every round trip after it (the HTTP upgrade, hello and welcome, offers) costs 2 × `oneWayMs`.
 */
import net from 'node:net';

export interface LatencyRelay {
  /** http://127.0.0.1:PORT, to give instead of the target's URL. */
  url: string;
  close(): Promise<void>;
}

export async function startLatencyRelay(targetUrl: string, oneWayMs: number): Promise<LatencyRelay> {
  const target = new URL(targetUrl);
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): net.Socket => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    return socket;
  };
  const relay = (from: net.Socket, to: net.Socket): void => {
    from.on('data', (chunk) => setTimeout(() => to.write(chunk), oneWayMs));
    from.on('end', () => setTimeout(() => to.end(), oneWayMs));
    from.on('error', () => to.destroy());
  };
  const server = net.createServer((client) => {
    const upstream = track(net.connect(Number(target.port), target.hostname));
    relay(track(client), upstream);
    relay(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
