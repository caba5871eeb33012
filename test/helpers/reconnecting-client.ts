/**
 * A chat client that behaves like the web chat across server restarts: Socket.IO reconnects by itself, every
 * (re)connection re-joins the conversation with `after` = the last message it has seen, events are deduplicated by
 * messageId, and a message whose ack never came is sent again, with the same clientMessageId, once connected again.
 */
import { io, type Socket } from 'socket.io-client';
import type { MessageNewEvent } from '../../shared/chat/index.js';
import type { AckResponse } from './chat.js';

export interface ReconnectingClient {
  socket: Socket;
  conversationId: string;
  /** Every distinct message:new of the conversation, in arrival order. */
  messages: MessageNewEvent[];
  /** Disconnect reasons, in order. */
  disconnects: string[];
  /** Successful joins (the first one and every re-join). */
  joins: number;
  /** Sends until acked (re-sending after a reconnect); resolves with the messageId. */
  send(text: string, clientMessageId: string): Promise<string>;
  /** The first bot message not in `seen`, arrived or arriving. */
  nextBotMessage(seen: ReadonlySet<string>, timeoutMs: number): Promise<MessageNewEvent>;
  close(): void;
}

const ACK_TIMEOUT_MS = 5000;
const MAX_SEND_ATTEMPTS = 20;

export function connectReconnectingClient(url: string, token: string, conversationId: string): Promise<ReconnectingClient> {
  const socket = io(url, {
    auth: { token },
    transports: ['websocket'],
    forceNew: true,
    reconnection: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
    timeout: 10_000,
  });
  const messages: MessageNewEvent[] = [];
  const seenIds = new Set<string>();
  const disconnects: string[] = [];
  const arrivals = new Set<() => void>();
  let lastSeenId: string | undefined;
  let joined: Promise<void>;
  let markJoined: () => void = () => undefined;
  const resetJoined = (): void => {
    joined = new Promise((resolve) => (markJoined = resolve));
  };
  resetJoined();

  const client: ReconnectingClient = {
    socket,
    conversationId,
    messages,
    disconnects,
    joins: 0,
    async send(text, clientMessageId) {
      for (let attempt = 1; attempt <= MAX_SEND_ATTEMPTS; attempt += 1) {
        await joined;
        try {
          const ack = (await socket.timeout(ACK_TIMEOUT_MS).emitWithAck('message:send', { conversationId, text, clientMessageId })) as AckResponse;
          if (ack.ok && ack.messageId !== undefined) return ack.messageId;
          if (!ack.ok && ack.error !== 'internal_error' && ack.error !== 'unavailable') throw new Error(`message:send refused: ${ack.error}`);
        } catch (error) {
          if (error instanceof Error && error.message.startsWith('message:send refused')) throw error;
          // no ack (the server went away): wait for the next join and send the same clientMessageId again
        }
        if (socket.connected) await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
      throw new Error(`message ${clientMessageId} was never acknowledged`);
    },
    nextBotMessage(seen, timeoutMs) {
      const find = (): MessageNewEvent | undefined => messages.find((message) => message.role === 'bot' && !seen.has(message.messageId));
      const found = find();
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          arrivals.delete(check);
          reject(new Error(`no new bot message in ${conversationId} within ${timeoutMs} ms (disconnects: ${disconnects.join(', ')})`));
        }, timeoutMs);
        const check = (): void => {
          const message = find();
          if (message === undefined) return;
          clearTimeout(timer);
          arrivals.delete(check);
          resolve(message);
        };
        arrivals.add(check);
      });
    },
    close() {
      socket.close();
    },
  };

  socket.on('message:new', (message: MessageNewEvent) => {
    if (message.conversationId !== conversationId || seenIds.has(message.messageId)) return;
    seenIds.add(message.messageId);
    messages.push(message);
    lastSeenId = message.messageId;
    for (const check of [...arrivals]) check();
  });
  socket.on('disconnect', (reason: string) => {
    disconnects.push(reason);
    resetJoined();
  });

  return new Promise((resolve, reject) => {
    let first = true;
    const join = (): void => {
      const payload = lastSeenId === undefined ? { conversationId } : { conversationId, after: lastSeenId };
      socket
        .timeout(ACK_TIMEOUT_MS)
        .emitWithAck('conversation:join', payload)
        .then((ack: AckResponse) => {
          if (!ack.ok) throw new Error(`join refused: ${ack.error}`);
          client.joins += 1;
          markJoined();
          if (first) {
            first = false;
            resolve(client);
          }
        })
        .catch((error: unknown) => {
          if (first) {
            first = false;
            socket.close();
            reject(error instanceof Error ? error : new Error(String(error)));
          } else if (socket.connected) join();
        });
    };
    socket.on('connect', join);
    socket.once('connect_error', (error: Error) => {
      if (!first) return;
      first = false;
      socket.close();
      reject(new Error(`socket did not connect: ${error.message}`));
    });
  });
}
