import { Emitter } from '@socket.io/redis-emitter';
import type { Redis } from 'ioredis';
import { conversationRoom, sessionRoom, staffRoom, type ConversationStatusEvent, type MessageChunkEvent, type MessageErrorEvent, type MessageNewEvent, type ServerToClientEvents } from './events.js';

/**
 * Publishes conversation events through Redis to whichever API process holds each socket (the API's
 * @socket.io/redis-adapter listens on the same channels). Usable from workers, which have no Socket.IO server.
 */
export class ChatEmitter {
  private readonly emitter: Emitter<ServerToClientEvents>;

  constructor(redis: Redis) {
    this.emitter = new Emitter<ServerToClientEvents>(redis);
  }

  messageNew(event: MessageNewEvent): void {
    this.emitter.to(conversationRoom(event.conversationId)).emit('message:new', event);
  }

  messageChunk(event: MessageChunkEvent): void {
    this.emitter.to(conversationRoom(event.conversationId)).emit('message:chunk', event);
  }

  messageError(event: MessageErrorEvent): void {
    this.emitter.to(conversationRoom(event.conversationId)).emit('message:error', event);
  }

  /** Disconnects the sockets of these login sessions, on whichever API process holds them. */
  endSessions(sessionIds: readonly string[]): void {
    if (sessionIds.length === 0) return;
    this.emitter.in(sessionIds.map(sessionRoom)).disconnectSockets(true);
  }

  /** To the conversation's room and to its tenant's staff, in one publish. */
  conversationStatus(tenantId: string, event: ConversationStatusEvent): void {
    this.emitter.to(conversationRoom(event.conversationId)).to(staffRoom(tenantId)).emit('conversation:status', event);
  }
}
