/**
 * The bare side of the sockets benchmark, in a process of its own: Socket.IO on a plain HTTP server with the Redis
 * adapter and the API's transport settings, a handshake that only asks for a token, and a `join` event that puts
 * the socket in one room. Prints `port N` once listening. Usage: node --import tsx scripts/bench/bareSocketServer.ts REDIS_URL
 */
import http from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

const [redisUrl] = process.argv.slice(2);
if (redisUrl === undefined) {
  process.stderr.write('usage: bareSocketServer.ts REDIS_URL\n');
  process.exit(2);
}
const pub = new Redis(redisUrl, { maxRetriesPerRequest: null });
const sub = pub.duplicate();
const server = http.createServer();
const io = new Server(server, { path: '/socket.io', serveClient: false, pingInterval: 25_000, pingTimeout: 20_000, adapter: createAdapter(pub, sub) });
io.use((socket, next) => {
  const token: unknown = (socket.handshake.auth as Record<string, unknown>).token;
  next(typeof token === 'string' && token.length > 0 ? undefined : new Error('unauthorized'));
});
io.on('connection', (socket) => {
  socket.on('join', (room: unknown, ack: unknown) => {
    if (typeof room !== 'string' || typeof ack !== 'function') return;
    void socket.join(room);
    (ack as (response: { ok: boolean }) => void)({ ok: true });
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`port ${typeof address === 'object' && address !== null ? address.port : 0}\n`);
});
process.once('SIGTERM', () => {
  void io.close().finally(() => {
    pub.disconnect();
    sub.disconnect();
    process.exit(0);
  });
});
