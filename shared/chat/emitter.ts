import { Emitter } from '@socket.io/redis-emitter';
import type { Redis } from 'ioredis';
import { conversationRoom, type MessageChunkEvent, type MessageErrorEvent, type MessageNewEvent, type ServerToClientEvents } from './events.js';

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
}
