import type http from 'node:http';
import type https from 'node:https';
import { createAdapter } from '@socket.io/redis-adapter';
import { Server, type Socket } from 'socket.io';
import { sessionRoom, staffRoom, type ServerToClientEvents } from '../../shared/chat/index.js';
import { AppError } from '../../shared/errors.js';
import { createRedis } from '../../shared/kernel.js';
import { closeGracefully } from '../../shared/redis.js';
import { log } from '../../shared/log/index.js';
import { identifyBearer, type Caller } from '../auth/authenticate.js';
import type { ApiContext } from '../context.js';
import { allowedOriginsCorsOptions } from '../http/cors.js';
import { registerChatHandlers, type ClientToServerEvents } from './handlers.js';

export interface SocketData {
  caller: Caller;
}

export type ChatServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

const PING_INTERVAL_MS = 25_000;
/** How long a shutdown waits for socket events already received (a stuck one must not hold the process forever). */
const IN_FLIGHT_GRACE_MS = 10_000;
const PING_TIMEOUT_MS = 20_000;

/** The page served by this very server (whatever host name it was reached by) may always connect. */
function isSameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** Refuses what a signed-in account may not do yet (one-time password, pending MFA enrolment). */
function pendingDuty(ctx: ApiContext, caller: Caller): string | undefined {
  if (caller.kind !== 'user') return undefined;
  const { session, roles } = caller.auth;
  if (session.mustChangePassword) return 'password_change_required';
  if (ctx.kernel.config.requireMfa && !session.mfaEnabled && (roles.includes('admin') || roles.includes('operator'))) return 'mfa_enrollment_required';
  return undefined;
}

/** A signed-in socket joins its session's room (a logout ends it at once) and, for staff, the tenant's staff room. */
function joinIdentityRooms(socket: Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>): void {
  const caller = socket.data.caller;
  if (caller.kind !== 'user') return;
  const rooms = [sessionRoom(caller.auth.sid)];
  if (caller.auth.roles.includes('admin') || caller.auth.roles.includes('operator')) rooms.push(staffRoom(caller.auth.tenantId));
  void socket.join(rooms);
}

/**
 * Socket.IO on the API's HTTP server: origin whitelist, frame size limit, heartbeat, handshake authentication by
 * access JWT or guest token, and the Redis adapter so rooms span every API process.
 */
export function attachSocketServer(httpServer: http.Server | https.Server, ctx: ApiContext): { io: ChatServer; close(): Promise<void> } {
  const { config } = ctx.kernel;
  const pub = createRedis(config, 'botserver-socket-pub');
  const sub = pub.duplicate();
  sub.on('error', (error: Error) => log.debug('redis connection error', { connection: 'botserver-socket-sub', error: error.message }));
  const allowed = new Set(config.allowedOrigins);
  /** Socket events being handled: a shutdown waits for them (a message being accepted gets its job) before the kernel closes. */
  const inFlight = new Set<Promise<void>>();
  const io: ChatServer = new Server(httpServer, {
    path: '/socket.io',
    serveClient: false,
    maxHttpBufferSize: config.wsMaxMessageSize,
    pingInterval: PING_INTERVAL_MS,
    pingTimeout: PING_TIMEOUT_MS,
    cors: allowedOriginsCorsOptions(config.allowedOrigins, ctx.widgetOrigins),
    // Browsers always send Origin; a present one must be this server's own, whitelisted, or (checked against the
    // guest token's bot at the handshake) a public bot's widget origin. Non-browser clients still need a token.
    allowRequest: (req, callback) => {
      const origin = req.headers.origin;
      if (origin === undefined || allowed.has(origin) || isSameOrigin(origin, req.headers.host)) return callback(null, true);
      ctx.widgetOrigins.allowsForAnyBot(origin).then(
        (yes) => callback(null, yes),
        () => callback(null, false),
      );
    },
    adapter: createAdapter(pub, sub),
  });

  io.use((socket, next) => {
    const token: unknown = (socket.handshake.auth as Record<string, unknown>).token;
    if (typeof token !== 'string' || token.length === 0 || token.length > 4096) return next(new Error('unauthorized'));
    const origin = socket.handshake.headers.origin;
    const foreignOrigin = origin !== undefined && !allowed.has(origin) && !isSameOrigin(origin, socket.handshake.headers.host) ? origin : undefined;
    identifyBearer(ctx, token).then(
      async (caller) => {
        const duty = pendingDuty(ctx, caller);
        if (duty !== undefined) return next(new Error(duty));
        // A widget's host page may connect only with a guest token of a bot that lists that page's origin.
        if (foreignOrigin !== undefined && (caller.kind !== 'guest' || !(await ctx.widgetOrigins.allowsForBot(caller.guest.bid, foreignOrigin)))) {
          return next(new Error('origin_not_allowed'));
        }
        socket.data.caller = caller;
        next();
      },
      (error: unknown) => next(new Error(error instanceof AppError && error.status === 401 ? 'unauthorized' : 'unavailable')),
    );
  });

  io.on('connection', (socket) => {
    joinIdentityRooms(socket);
    registerChatHandlers(ctx, socket, (handling) => {
      inFlight.add(handling);
      void handling.finally(() => inFlight.delete(handling));
    });
  });
  ctx.metrics.socketCount = () => io.engine.clientsCount;
  io.engine.on('connection_error', (error: { code: number; message: string }) => log.debug('socket handshake refused', { code: error.code, reason: error.message }));

  return {
    io,
    async close() {
      // Every client's transport closes (a client reconnects, through the proxy to another API process); the
      // events already received are still handled to the end.
      await io.close();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...inFlight]), new Promise((resolve) => (timer = setTimeout(resolve, IN_FLIGHT_GRACE_MS)))]);
      clearTimeout(timer);
      await Promise.all([closeGracefully(pub), closeGracefully(sub)]);
    },
  };
}
