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

/** Events a socket may send per window, and how many invalid ones end its connection. */
const EVENTS_PER_WINDOW = 30;
const WINDOW_SECONDS = 10;
const MAX_STRIKES = 5;
const eventLimiter = new RateLimiterMemory({ points: EVENTS_PER_WINDOW, duration: WINDOW_SECONDS });
/** How often an idle socket's session is checked, so a logout also ends sockets that send nothing. */
const LIVENESS_CHECK_MS = 60_000;

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

/** `track` receives every event's handling as it starts, so a shutdown can wait for what is in flight. */
export function registerChatHandlers(ctx: ApiContext, socket: ChatSocket, track: (handling: Promise<void>) => void = () => undefined): void {
  const caller = socket.data.caller;
  let strikes = 0;

  const disconnectForAbuse = (reason: string): void => {
    ctx.metrics.socketAbuseDisconnects.inc();
    void ctx.kernel.audit.record({
      type: 'security.violation',
      outcome: 'denied',
      tenantId: tenantOf(caller),
      actor: caller.kind === 'user' ? caller.auth.userId : caller.guest.sub,
      ip: socket.handshake.address,
      details: { reason, channel: 'socket' },
    }).catch(() => undefined);
    socket.disconnect(true);
  };

  /** The credentials the socket connected with still hold: its session is alive, or its guest token unexpired. */
  const stillAuthorised = async (): Promise<boolean> => {
    if (caller.kind === 'guest') return caller.guest.exp * 1000 > Date.now();
    const session = await ctx.sessions.touch(caller.auth.sid);
    return session !== undefined && session.userId === caller.auth.userId;
  };
  const endIfRevoked = async (): Promise<boolean> => {
    if (await stillAuthorised()) return false;
    socket.disconnect(true);
    return true;
  };
  const livenessTimer = setInterval(() => {
    endIfRevoked().catch(() => undefined);
  }, LIVENESS_CHECK_MS);
  livenessTimer.unref();
  socket.on('disconnect', () => clearInterval(livenessTimer));

  const strike = (reason: string): void => {
    strikes += 1;
    if (strikes >= MAX_STRIKES) disconnectForAbuse(reason);
  };

  /**
   * Wraps a handler: rate limit, payload validation, typed errors to the ack, never an unhandled rejection. Strikes
   * come only from what the client did wrong; an event refused because a dependency is down gives its budget point
   * back, so a client that retries as told is never counted twice for one message.
   */
  const on = <S extends z.ZodType>(event: keyof ClientToServerEvents, schema: S, handle: (payload: z.infer<S>) => Promise<{ messageId?: string }>): void => {
    const handleEvent = async (payload: unknown, reply: Ack): Promise<void> => {
      try {
        await eventLimiter.consume(socket.id);
      } catch {
        // rate-limiter-flexible rejects with its result object when the budget is spent
        reply({ ok: false, error: 'rate_limited' });
        if (Date.now() - lastOutageAt > OUTAGE_GRACE_MS) strike('rate_limited');
        return;
      }
      try {
        if (await endIfRevoked()) {
          reply({ ok: false, error: 'unauthorized' });
          return;
        }
        const parsed = schema.safeParse(payload);
        if (!parsed.success || findUnsafeText(payload) !== undefined) {
          // The ack first: the fifth strike disconnects, and the client should still learn why.
          reply({ ok: false, error: 'invalid_request' });
          strike('invalid_events');
          return;
        }
        const result = await handle(parsed.data);
        reply({ ok: true, ...result });
      } catch (error) {
        const refusal = refusalOf(error);
        if (!refusal.ok && refusal.error === 'unavailable') {
          lastOutageAt = Date.now();
          ctx.metrics.unavailableRefusals.inc({ channel: 'socket' });
          await eventLimiter.reward(socket.id, 1).catch(() => undefined);
        }
        reply(refusal);
      }
    };
    socket.on(event, (payload: unknown, ack?: Ack) => {
      track(handleEvent(payload, typeof ack === 'function' ? ack : () => undefined));
    });
  };

  on('conversation:join', joinSchema, async ({ conversationId, after }) => {
    const missed = await withConversation(ctx, caller, conversationId, 'read', async (trx) => {
      // Into the room before reading what was missed: a message committed after the read is then announced to this
      // socket, one committed before it is in the replay (and one in both is deduplicated by the client).
      await socket.join(conversationRoom(conversationId));
      return after === undefined ? [] : listMessages(trx, ctx.kernel.keys.columnRing, conversationId, { after, limit: 500, withAttachments: true });
    });
    // A client that reconnects says which message it saw last and is sent what it missed, from PostgreSQL.
    for (const message of missed) socket.emit('message:new', toMessageEvent(message));
    return {};
  });

  on('message:send', sendSchema, async ({ conversationId, text, clientMessageId, attachments }) => {
    const accepted = await acceptMessage(ctx, caller, conversationId, text, clientMessageId, { via: 'socket', ip: socket.handshake.address }, attachments);
    return { messageId: accepted.messageId };
  });

  socket.onAny((event: string, ...args: unknown[]) => {
    if (event === 'conversation:join' || event === 'message:send') return;
    // A client waiting for an ack gets one (before a fifth strike disconnects), so it never hangs.
    const ack = args.at(-1);
    if (typeof ack === 'function') (ack as Ack)({ ok: false, error: 'unknown_event' });
    strike('unknown_events');
  });
}
