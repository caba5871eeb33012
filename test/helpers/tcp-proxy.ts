import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A loopback TCP balancer standing in for the reverse proxy in front of several API processes: each new
 * connection goes to the next backend in turn; a backend that refuses the connection (a stopped or killed
 * process) is skipped, like a proxy retrying the next upstream; with no backend at all the client is closed.
 * Connections already open stay with their backend and end when it closes them.
 */
export interface TcpProxy {
  url: string;
  /** The backend ports new connections are spread over (an empty list refuses every connection). */
  setBackends(ports: readonly number[]): void;
  close(): Promise<void>;
}

export async function startTcpProxy(backends: readonly number[] = []): Promise<TcpProxy> {
  let ports = [...backends];
  let turn = 0;
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };

  const connect = (client: net.Socket, candidates: number[]): void => {
    const port = candidates.shift();
    if (port === undefined || client.destroyed) {
      client.destroy();
      return;
    }
    const upstream = net.connect({ host: '127.0.0.1', port });
    track(upstream);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    // Refused before it connected (a stopped or killed backend): the next backend gets the client.
    upstream.once('error', () => {
      if (!connected) connect(client, candidates);
    });
    upstream.once('close', () => {
      if (connected) client.destroy();
    });
    client.once('close', () => upstream.destroy());
  };

  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    track(client);
    client.once('error', () => client.destroy());
    const order = ports.map((_, index) => ports[(turn + index) % ports.length] as number);
    turn += 1;
    connect(client, order);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setBackends(next) {
      ports = [...next];
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
