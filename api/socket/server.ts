import type http from 'node:http';
import type https from 'node:https';
import { createAdapter } from '@socket.io/redis-adapter';
import { Server } from 'socket.io';
import type { ServerToClientEvents } from '../../shared/chat/index.js';
import { AppError } from '../../shared/errors.js';
import { createRedis } from '../../shared/kernel.js';
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

/**
 * Socket.IO on the API's HTTP server: origin whitelist, frame size limit, heartbeat, handshake authentication by
 * access JWT or guest token, and the Redis adapter so rooms span every API process.
 */
export function attachSocketServer(httpServer: http.Server | https.Server, ctx: ApiContext): { io: ChatServer; close(): Promise<void> } {
  const { config } = ctx.kernel;
  const pub = createRedis(config.redisUrl, 'botserver-socket-pub');
  const sub = pub.duplicate();
  const allowed = new Set(config.allowedOrigins);
  const io: ChatServer = new Server(httpServer, {
    path: '/socket.io',
    serveClient: false,
    maxHttpBufferSize: config.wsMaxMessageSize,
    pingInterval: PING_INTERVAL_MS,
    pingTimeout: PING_TIMEOUT_MS,
    cors: allowedOriginsCorsOptions(config.allowedOrigins),
    // Browsers always send Origin; a present one must be this server's own or whitelisted. Non-browser clients still need a token.
    allowRequest: (req, callback) => {
      const origin = req.headers.origin;
      callback(null, origin === undefined || allowed.has(origin) || isSameOrigin(origin, req.headers.host));
    },
    adapter: createAdapter(pub, sub),
  });

  io.use((socket, next) => {
    const token: unknown = (socket.handshake.auth as Record<string, unknown>).token;
    if (typeof token !== 'string' || token.length === 0 || token.length > 4096) return next(new Error('unauthorized'));
    identifyBearer(ctx, token).then(
      (caller) => {
        const duty = pendingDuty(ctx, caller);
        if (duty !== undefined) return next(new Error(duty));
        socket.data.caller = caller;
        next();
      },
      (error: unknown) => next(new Error(error instanceof AppError && error.status === 401 ? 'unauthorized' : 'unavailable')),
    );
  });

  io.on('connection', (socket) => registerChatHandlers(ctx, socket));
  ctx.metrics.socketCount = () => io.engine.clientsCount;
  io.engine.on('connection_error', (error: { code: number; message: string }) => log.debug('socket handshake refused', { code: error.code, reason: error.message }));

  return {
    io,
    async close() {
      await io.close();
      pub.disconnect();
      sub.disconnect();
    },
  };
}
