/**
 * Helpers of the perimeter suites (issue 5): a Socket.IO handshake that reports how it ended, and a quick set-up of
 * an account, a bot and a conversation over any transport (plain fetch or HTTPS with a test CA).
 */
import { io, type Socket } from 'socket.io-client';
import type { Config } from '../../shared/config/index.js';
import { createTestUser, type TestUser } from './api.js';
import { httpsRequest } from './tls.js';

export type Handshake = { connected: true; socket: Socket } | { connected: false; message: string };

export interface HandshakeOptions {
  token?: string;
  /** Sent as the `Origin` header by both Node transports. */
  origin?: string;
  transport: 'websocket' | 'polling';
  /** The CA to trust for wss:// / https:// (a self-signed test certificate). */
  ca?: string;
}

const opened = new Set<Socket>();

/**
 * Connects once (no reconnection) and resolves on `connect` or on `connect_error` (which Socket.IO also raises on
 * its own handshake timeout), so it always settles.
 */
export function handshake(url: string, options: HandshakeOptions): Promise<Handshake> {
  const socket = io(url, {
    auth: options.token === undefined ? {} : { token: options.token },
    transports: [options.transport],
    reconnection: false,
    forceNew: true,
    timeout: 10_000,
    ...(options.origin === undefined ? {} : { extraHeaders: { origin: options.origin } }),
    ...(options.ca === undefined ? {} : { ca: options.ca }),
  });
  opened.add(socket);
  return new Promise((resolve) => {
    socket.once('connect', () => {
      socket.off('connect_error');
      resolve({ connected: true, socket });
    });
    socket.once('connect_error', (error: Error) => {
      socket.off('connect');
      socket.disconnect();
      opened.delete(socket);
      resolve({ connected: false, message: error.message });
    });
  });
}

/** Disconnects every socket opened by `handshake`. */
export function closeSockets(): void {
  for (const socket of opened) socket.disconnect();
  opened.clear();
}

export interface JsonResponse {
  status: number;
  body: Record<string, unknown>;
}

/** One JSON request: method, absolute URL, body (optional), extra headers. */
export type JsonRequester = (method: string, url: string, body?: unknown, headers?: Record<string, string>) => Promise<JsonResponse>;

function parse(text: string): Record<string, unknown> {
  return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
}

export const fetchJson: JsonRequester = async (method, url, body, headers = {}) => {
  const response = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: parse(await response.text()) };
};

/** The same over HTTPS, trusting only `ca`. */
export function httpsJson(ca: string): JsonRequester {
  return async (method, url, body, headers = {}) => {
    const response = await httpsRequest(url, ca, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: parse(response.body) };
  };
}

export interface ChatSetup {
  user: TestUser;
  accessToken: string;
  botId: string;
  conversationId: string;
}

/** An admin (who may create bots), signed in, with a bot and a conversation. */
export async function setUpChat(api: { url: string; config: Config }, request: JsonRequester = fetchJson): Promise<ChatSetup> {
  const user = await createTestUser(api.config, { role: 'admin' });
  const login = await request('POST', `${api.url}/auth/login`, { email: user.email, password: user.password });
  if (login.status !== 200) throw new Error(`login failed: ${login.status} ${JSON.stringify(login.body)}`);
  const accessToken = String(login.body.accessToken);
  const auth = { authorization: `Bearer ${accessToken}` };
  const bot = await request('POST', `${api.url}/api/bots`, { name: 'Perimeter bot', rules: [{ match: 'hello', reply: 'Hi there.' }] }, auth);
  if (bot.status !== 201) throw new Error(`bot creation failed: ${bot.status} ${JSON.stringify(bot.body)}`);
  const conversation = await request('POST', `${api.url}/api/bots/${String(bot.body.id)}/conversations`, {}, auth);
  if (conversation.status !== 201) throw new Error(`conversation creation failed: ${conversation.status} ${JSON.stringify(conversation.body)}`);
  return { user, accessToken, botId: String(bot.body.id), conversationId: String(conversation.body.id) };
}
