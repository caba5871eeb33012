import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { Socket } from 'socket.io';
import { z } from 'zod';
import { conversationRoom, listMessages, toMessageEvent, type ServerToClientEvents } from '../../shared/chat/index.js';
import { UnavailableError } from '../../shared/errors.js';
import { clientErrorOf } from '../../shared/failures.js';
import { log } from '../../shared/log/index.js';
import { tenantOf, withConversation } from '../chat/access.js';
import { acceptMessage, attachmentIdsSchema } from '../chat/send.js';
import type { ApiContext } from '../context.js';
import { findUnsafeText } from '../http/validate.js';
import type { SocketData } from './server.js';

export type AckResponse = { ok: true; messageId?: string } | { ok: false; error: string; retryAfterMs?: number };
export type Ack = (response: AckResponse) => void;

export interface ClientToServerEvents {
  'conversation:join': (payload: unknown, ack?: Ack) => void;
  'message:send': (payload: unknown, ack?: Ack) => void;
}

type ChatSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export const joinSchema = z.strictObject({ conversationId: z.uuid(), after: z.uuid().optional() });
export const sendSchema = z
  .strictObject({ conversationId: z.uuid(), text: z.string().trim(), clientMessageId: z.string().min(1).max(100), attachments: attachmentIdsSchema.optional() })
  .refine((input) => input.text.length > 0 || (input.attachments?.length ?? 0) > 0, { message: 'A message needs text or an attachment', path: ['text'] });

/** Events a socket may send per window (BOTSERVER_WS_RATE_LIMIT), and how many invalid ones end its connection. */
const WINDOW_SECONDS = 10;
const MAX_STRIKES = 5;
/**
 * How long a socket's session, once found alive, is taken as alive for its events. A logout or any revocation
 * ends the session's sockets at once (its room is disconnected through the Redis adapter); this bounds the rest:
 * an event arriving later than this after a session ended unseen is refused and ends its socket.
 */
export const SESSION_CHECK_TTL_MS = 2000;
/** How often every socket's session is checked, so sockets that send nothing also end when their session has. */
const LIVENESS_SWEEP_MS = 60_000;
/** Sessions checked at once by a sweep. */
const SWEEP_CONCURRENCY = 50;

/**
 * When this process last refused an event as `unavailable`. For a window after it, running out of the event budget
 * is not held against a socket: clients retrying through the server's own outage are not abusing it.
 */
let lastOutageAt = 0;
const OUTAGE_GRACE_MS = WINDOW_SECONDS * 1000;

/** The ack for an event that failed: its typed error, `unavailable` with when to retry, or `internal_error` (a bug). */
function refusalOf(error: unknown): AckResponse {
  const known = clientErrorOf(error);
  if (known instanceof UnavailableError) return { ok: false, error: 'unavailable', retryAfterMs: known.retryAfterMs };
  if (known !== undefined && known.expose) return { ok: false, error: known.code };
  log.error('socket event failed', { error: error instanceof Error ? error.message : String(error) });
  return { ok: false, error: 'internal_error' };
}

/** What a connected socket carries besides Socket.IO's own: its strikes and until when its session is known alive. */
interface SocketState {
  strikes: number;
  authorisedUntil: number;
  track: (handling: Promise<void>) => void;
}

type Handler<S extends z.ZodType> = (ctx: ApiContext, socket: ChatSocket, payload: z.infer<S>) => Promise<{ messageId?: string }>;

/**
 * The chat events of every socket of one API process. The listeners are shared by all sockets (Socket.IO calls
 * them with the socket as `this`) and one sweep checks every socket's session, so a socket costs no closures or
 * timers of its own: only its small SocketState.
 */
class ChatHandlers {
  private readonly states = new WeakMap<ChatSocket, SocketState>();
  private readonly limiter: RateLimiterMemory;
  private readonly listeners: Record<keyof ClientToServerEvents, (this: ChatSocket, payload: unknown, ack?: Ack) => void>;
  private readonly onUnknown: (this: ChatSocket, event: string, ...args: unknown[]) => void;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(private readonly ctx: ApiContext) {
    this.limiter = new RateLimiterMemory({ points: ctx.kernel.config.wsEventsPer10s, duration: WINDOW_SECONDS });
    this.listeners = { 'conversation:join': this.listenerFor(joinSchema, join), 'message:send': this.listenerFor(sendSchema, send) };
    const strike = (socket: ChatSocket): void => this.strike(socket, 'unknown_events');
    this.onUnknown = function (this: ChatSocket, event: string, ...args: unknown[]): void {
      if (event === 'conversation:join' || event === 'message:send') return;
      // A client waiting for an ack gets one (before a fifth strike disconnects), so it never hangs.
      const ack = args.at(-1);
      if (typeof ack === 'function') (ack as Ack)({ ok: false, error: 'unknown_event' });
      strike(this);
    };
  }

  /** One listener for every socket: Socket.IO calls it with the socket as `this`. */
  private listenerFor<S extends z.ZodType>(schema: S, handle: Handler<S>): (this: ChatSocket, payload: unknown, ack?: Ack) => void {
    const handleEvent = (socket: ChatSocket, payload: unknown, reply: Ack): void => {
      const handling = this.handleEvent(socket, schema, handle, payload, reply);
      this.states.get(socket)?.track(handling);
    };
    return function (this: ChatSocket, payload: unknown, ack?: Ack): void {
      handleEvent(this, payload, typeof ack === 'function' ? ack : () => undefined);
    };
  }

  register(socket: ChatSocket, track: (handling: Promise<void>) => void): void {
    this.states.set(socket, { strikes: 0, authorisedUntil: Date.now() + SESSION_CHECK_TTL_MS, track });
    for (const [event, listener] of Object.entries(this.listeners)) socket.on(event as keyof ClientToServerEvents, listener);
    socket.onAny(this.onUnknown);
    this.sweepTimer ??= setInterval(() => void this.sweep(socket.nsp.sockets), LIVENESS_SWEEP_MS).unref();
  }

  /**
   * Rate limit, session check, payload validation, typed errors to the ack, never an unhandled rejection. Strikes
   * come only from what the client did wrong; an event refused because a dependency is down gives its budget point
   * back, so a client that retries as told is never counted twice for one message.
   */
  private async handleEvent<S extends z.ZodType>(socket: ChatSocket, schema: S, handle: Handler<S>, payload: unknown, reply: Ack): Promise<void> {
    try {
      await this.limiter.consume(socket.id);
    } catch {
      // rate-limiter-flexible rejects with its result object when the budget is spent
      reply({ ok: false, error: 'rate_limited' });
      if (Date.now() - lastOutageAt > OUTAGE_GRACE_MS) this.strike(socket, 'rate_limited');
      return;
    }
    try {
      if (!(await this.stillAuthorised(socket))) {
        reply({ ok: false, error: 'unauthorized' });
        socket.disconnect(true);
        return;
      }
      const parsed = schema.safeParse(payload);
      if (!parsed.success || findUnsafeText(payload) !== undefined) {
        // The ack first: the fifth strike disconnects, and the client should still learn why.
        reply({ ok: false, error: 'invalid_request' });
        this.strike(socket, 'invalid_events');
        return;
      }
      reply({ ok: true, ...(await handle(this.ctx, socket, parsed.data)) });
    } catch (error) {
      const refusal = refusalOf(error);
      if (!refusal.ok && refusal.error === 'unavailable') {
        lastOutageAt = Date.now();
        this.ctx.metrics.unavailableRefusals.inc({ channel: 'socket' });
        await this.limiter.reward(socket.id, 1).catch(() => undefined);
      }
      reply(refusal);
    }
  }

  /**
   * The credentials the socket connected with still hold: its session is alive (checked at most once per
   * SESSION_CHECK_TTL_MS, which also restarts its idle timer), or its guest token unexpired.
   */
  private async stillAuthorised(socket: ChatSocket): Promise<boolean> {
    const caller = socket.data.caller;
    if (caller.kind === 'guest') return caller.guest.exp * 1000 > Date.now();
    const state = this.states.get(socket);
    if (state !== undefined && Date.now() < state.authorisedUntil) return true;
    const session = await this.ctx.sessions.touch(caller.auth.sid);
    const alive = session !== undefined && session.userId === caller.auth.userId;
    if (alive && state !== undefined) state.authorisedUntil = Date.now() + SESSION_CHECK_TTL_MS;
    return alive;
  }

  private strike(socket: ChatSocket, reason: string): void {
    const state = this.states.get(socket);
    if (state === undefined) return;
    state.strikes += 1;
    if (state.strikes < MAX_STRIKES) return;
    const caller = socket.data.caller;
    this.ctx.metrics.socketAbuseDisconnects.inc();
    void this.ctx.kernel.audit
      .record({
        type: 'security.violation',
        outcome: 'denied',
        tenantId: tenantOf(caller),
        actor: caller.kind === 'user' ? caller.auth.userId : caller.guest.sub,
        ip: socket.handshake.address,
        details: { reason, channel: 'socket' },
      })
      .catch(() => undefined);
    socket.disconnect(true);
  }

  /** Ends every socket whose session ended (a timeout, or a revocation whose push was missed) or whose guest token expired. */
  private async sweep(sockets: ReadonlyMap<string, ChatSocket>): Promise<void> {
    if (this.sweeping) return;
    if (sockets.size === 0) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = undefined;
      return;
    }
    this.sweeping = true;
    try {
      const bySession = new Map<string, ChatSocket[]>();
      for (const socket of sockets.values()) {
        const caller = socket.data.caller;
        if (caller.kind === 'guest') {
          if (caller.guest.exp * 1000 <= Date.now()) socket.disconnect(true);
          continue;
        }
        bySession.set(caller.auth.sid, [...(bySession.get(caller.auth.sid) ?? []), socket]);
      }
      const sessions = [...bySession.values()];
      for (let index = 0; index < sessions.length; index += SWEEP_CONCURRENCY) {
        await Promise.all(
          sessions.slice(index, index + SWEEP_CONCURRENCY).map(async (group) => {
            const [first] = group;
            if (first === undefined || (await this.stillAuthorised(first).catch(() => true))) return;
            for (const socket of group) socket.disconnect(true);
          }),
        );
      }
    } finally {
      this.sweeping = false;
    }
  }
}

const join: Handler<typeof joinSchema> = async (ctx, socket, { conversationId, after }) => {
  const missed = await withConversation(ctx, socket.data.caller, conversationId, 'read', async (trx) => {
    // Into the room before reading what was missed: a message committed after the read is then announced to this
    // socket, one committed before it is in the replay (and one in both is deduplicated by the client).
    await socket.join(conversationRoom(conversationId));
    return after === undefined ? [] : listMessages(trx, ctx.kernel.keys.columnRing, conversationId, { after, limit: 500, withAttachments: true });
  });
  // A client that reconnects says which message it saw last and is sent what it missed, from PostgreSQL.
  for (const message of missed) socket.emit('message:new', toMessageEvent(message));
  return {};
};

const send: Handler<typeof sendSchema> = async (ctx, socket, { conversationId, text, clientMessageId, attachments }) => {
  const accepted = await acceptMessage(ctx, socket.data.caller, conversationId, text, clientMessageId, { via: 'socket', ip: socket.handshake.address }, attachments);
  return { messageId: accepted.messageId };
};

const handlersOf = new WeakMap<ApiContext, ChatHandlers>();

/** `track` receives every event's handling as it starts, so a shutdown can wait for what is in flight. */
export function registerChatHandlers(ctx: ApiContext, socket: ChatSocket, track: (handling: Promise<void>) => void = () => undefined): void {
  let handlers = handlersOf.get(ctx);
  if (handlers === undefined) {
    handlers = new ChatHandlers(ctx);
    handlersOf.set(ctx, handlers);
  }
  handlers.register(socket, track);
}
