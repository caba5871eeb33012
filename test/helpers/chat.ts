/**
 * Chat test helpers: Socket.IO clients that connect with a token and record every server event, acks with a
 * timeout, waiting for a message by predicate, and a quick REST set-up of an admin, a bot and a conversation.
 */
import { io, type Socket } from 'socket.io-client';
import type { Config } from '../../shared/config/index.js';
import type { Role } from '../../shared/accounts/index.js';
import type { MessageChunkEvent, MessageErrorEvent, MessageNewEvent } from '../../shared/chat/index.js';
import { createTestUser, loginTokens, type TestUser } from './api.js';

export type { MessageChunkEvent, MessageErrorEvent, MessageNewEvent };

export type AckResponse = { ok: true; messageId?: string } | { ok: false; error: string; retryAfterMs?: number };

export interface ConnectOptions {
  /** `auth.token`; omitted: no token at all. */
  token?: string;
  /** Headers of the handshake (e.g. `origin`); sent by the Node websocket and polling transports alike. */
  extraHeaders?: Record<string, string>;
  transports?: Array<'websocket' | 'polling'>;
  /** How long to wait for `connect` or `connect_error` (default 5 s). */
  timeoutMs?: number;
}

export interface ChatClient {
  socket: Socket;
  /** Every `message:new`, `message:chunk`, `message:error` received, in arrival order. */
  messages: MessageNewEvent[];
  chunks: MessageChunkEvent[];
  errors: MessageErrorEvent[];
  /** Disconnect reasons, in order. */
  disconnects: string[];
  join(conversationId: string, after?: string, timeoutMs?: number): Promise<AckResponse>;
  send(conversationId: string, text: string, clientMessageId: string, timeoutMs?: number): Promise<AckResponse>;
  /** Emits any event with a payload and waits for its ack. */
  emitAck(event: string, payload: unknown, timeoutMs?: number): Promise<AckResponse>;
  /** Resolves with the first `message:new` (already received or arriving) that matches, or rejects after `timeoutMs`. */
  waitForMessage(predicate: (message: MessageNewEvent) => boolean, timeoutMs?: number): Promise<MessageNewEvent>;
  /** Resolves with the first `message:error` that matches, or rejects after `timeoutMs`. */
  waitForError(predicate: (error: MessageErrorEvent) => boolean, timeoutMs?: number): Promise<MessageErrorEvent>;
  /** Resolves with the reason of the (next or past) disconnect, or rejects after `timeoutMs`. */
  waitForDisconnect(timeoutMs?: number): Promise<string>;
  close(): void;
}

const open = new Set<Socket>();

function makeSocket(url: string, options: ConnectOptions): Socket {
  const socket = io(url, {
    auth: options.token === undefined ? {} : { token: options.token },
    transports: options.transports ?? ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: options.timeoutMs ?? 5000,
    ...(options.extraHeaders === undefined ? {} : { extraHeaders: options.extraHeaders }),
  });
  open.add(socket);
  return socket;
}

/** Waits for whatever comes first of `connect` and `connect_error`. */
function handshake(socket: Socket, timeoutMs: number): Promise<{ connected: true } | { connected: false; error: Error }> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      cleanup();
      resolve({ connected: false, error: new Error(`neither connect nor connect_error within ${timeoutMs} ms`) });
    }, timeoutMs);
    const onConnect = (): void => {
      cleanup();
      resolve({ connected: true });
    };
    const onError = (error: Error): void => {
      cleanup();
      resolve({ connected: false, error });
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
    };
    socket.once('connect', onConnect);
    socket.once('connect_error', onError);
  });
}

/** Waits (event-driven, no polling) for the first item of `list` that matches, including items that arrive later. */
function waitInList<T>(socket: Socket, event: string, list: T[], predicate: (item: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const found = list.find(predicate);
  if (found !== undefined) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, listener);
      reject(new Error(`no matching ${what} within ${timeoutMs} ms; received: ${JSON.stringify(list)}`));
    }, timeoutMs);
    const listener = (item: T): void => {
      if (!predicate(item)) return;
      clearTimeout(timer);
      socket.off(event, listener);
      resolve(item);
    };
    socket.on(event, listener);
  });
}

/** Connects and resolves once connected; rejects with the `connect_error` (or a timeout). */
export async function connectClient(url: string, options: ConnectOptions): Promise<ChatClient> {
  const socket = makeSocket(url, options);
  const messages: MessageNewEvent[] = [];
  const chunks: MessageChunkEvent[] = [];
  const errors: MessageErrorEvent[] = [];
  const disconnects: string[] = [];
  // Listeners before the handshake, so nothing sent right after `connect` is missed.
  socket.on('message:new', (message: MessageNewEvent) => messages.push(message));
  socket.on('message:chunk', (chunk: MessageChunkEvent) => chunks.push(chunk));
  socket.on('message:error', (error: MessageErrorEvent) => errors.push(error));
  socket.on('disconnect', (reason: string) => disconnects.push(reason));
  const result = await handshake(socket, options.timeoutMs ?? 5000);
  if (!result.connected) {
    socket.close();
    open.delete(socket);
    throw new Error(`socket did not connect: ${result.error.message}`);
  }
  const emitAck = async (event: string, payload: unknown, timeoutMs = 5000): Promise<AckResponse> =>
    (await socket.timeout(timeoutMs).emitWithAck(event, payload)) as AckResponse;
  return {
    socket,
    messages,
    chunks,
    errors,
    disconnects,
    emitAck,
    join: (conversationId, after, timeoutMs) => emitAck('conversation:join', after === undefined ? { conversationId } : { conversationId, after }, timeoutMs),
    send: (conversationId, text, clientMessageId, timeoutMs) => emitAck('message:send', { conversationId, text, clientMessageId }, timeoutMs),
    waitForMessage: (predicate, timeoutMs = 10_000) => waitInList(socket, 'message:new', messages, predicate, timeoutMs, 'message:new'),
    waitForError: (predicate, timeoutMs = 10_000) => waitInList(socket, 'message:error', errors, predicate, timeoutMs, 'message:error'),
    waitForDisconnect: (timeoutMs = 10_000) => {
      const past = disconnects[0];
      if (past !== undefined) return Promise.resolve(past);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the socket stayed connected for ${timeoutMs} ms`)), timeoutMs);
        socket.once('disconnect', (reason: string) => {
          clearTimeout(timer);
          resolve(reason);
        });
      });
    },
    close: () => {
      socket.close();
      open.delete(socket);
    },
  };
}

/** Connects and expects a refusal: resolves with the `connect_error`; rejects when the socket connects. */
export async function connectRefused(url: string, options: ConnectOptions): Promise<Error> {
  const socket = makeSocket(url, options);
  try {
    const result = await handshake(socket, options.timeoutMs ?? 5000);
    if (result.connected) throw new Error('the socket connected, but a refusal was expected');
    return result.error;
  } finally {
    socket.close();
    open.delete(socket);
  }
}

/** Closes every socket these helpers opened and that is still open (call in `after`). */
export function closeAllClients(): void {
  for (const socket of open) socket.close();
  open.clear();
}

export interface JsonReply {
  status: number;
  body: Record<string, unknown>;
  text: string;
}

/** One JSON request; `token` becomes a bearer Authorization header. */
export async function restJson(method: string, url: string, options: { token?: string; body?: unknown } = {}): Promise<JsonReply> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, { method, headers, ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }) });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    // not JSON: assertions on `body` fail, with `text` at hand
  }
  return { status: response.status, body, text };
}

/** Like restJson, but fails unless the status is `expected`. */
export async function restOk(method: string, url: string, expected: number, options: { token?: string; body?: unknown } = {}): Promise<Record<string, unknown>> {
  const reply = await restJson(method, url, options);
  if (reply.status !== expected) throw new Error(`${method} ${url}: expected ${expected}, got ${reply.status} ${reply.text}`);
  return reply.body;
}

export interface SignedInUser extends TestUser {
  token: string;
}

const sessions: Array<{ url: string; token: string }> = [];

/** Creates an account in `tenant` and signs it in through the API at `url` (whose keys `config` shares). */
export async function signedInUser(api: { url: string; config: Config }, role: Role, tenant = 'default'): Promise<SignedInUser> {
  const user = await createTestUser(api.config, { role, tenant });
  const { accessToken } = await loginTokens(api, user);
  sessions.push({ url: api.url, token: accessToken });
  return { ...user, token: accessToken };
}

/** Logs out (all sessions) every account signed in by `signedInUser`, so no session or refresh token stays in Redis. */
export async function signOutAll(): Promise<void> {
  const pending = sessions.splice(0);
  await Promise.allSettled(pending.map(({ url, token }) => fetch(`${url}/auth/logout?all=1`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })));
}

export interface BotSpec {
  name?: string;
  public?: boolean;
  greeting?: string;
  rules?: Array<{ match: string; reply: string; handoff?: boolean }>;
  llm?: Record<string, unknown>;
  allowedOrigins?: string[];
}

/** Creates a bot through REST as `staff` (an admin or operator); returns its id. */
export async function createBot(url: string, staff: { token: string }, bot: BotSpec = {}): Promise<string> {
  const body = await restOk('POST', `${url}/api/bots`, 201, { token: staff.token, body: { name: 'Test bot', ...bot } });
  return String(body.id);
}

/** Starts a conversation with `botId` as `user`; returns its id. */
export async function createConversation(url: string, user: { token: string }, botId: string): Promise<string> {
  const body = await restOk('POST', `${url}/api/bots/${botId}/conversations`, 201, { token: user.token, body: {} });
  return String(body.id);
}

export interface ChatSetup {
  admin: SignedInUser;
  botId: string;
  conversationId: string;
}

/** An admin (in `tenant`), a bot, and a conversation of the admin with it, all through REST. */
export async function setupChat(api: { url: string; config: Config }, bot: BotSpec = {}, tenant = 'default'): Promise<ChatSetup> {
  const admin = await signedInUser(api, 'admin', tenant);
  const botId = await createBot(api.url, admin, bot);
  const conversationId = await createConversation(api.url, admin, botId);
  return { admin, botId, conversationId };
}

/** Sends a message over REST as a participant; resolves with its id (202). */
export async function postMessage(url: string, token: string, conversationId: string, text: string, clientMessageId?: string): Promise<string> {
  const body = await restOk('POST', `${url}/api/conversations/${conversationId}/messages`, 202, {
    token,
    body: clientMessageId === undefined ? { text } : { text, clientMessageId },
  });
  return String(body.messageId);
}

/** The conversation's messages via REST (oldest first). */
export async function listConversation(url: string, token: string, conversationId: string): Promise<Array<{ messageId: string; role: string; text: string }>> {
  const body = await restOk('GET', `${url}/api/conversations/${conversationId}/messages`, 200, { token });
  return body.messages as Array<{ messageId: string; role: string; text: string }>;
}
