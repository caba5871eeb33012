import type { AttachmentSummary } from '../files/index.js';

/** CONTRACT §4: the Socket.IO room of a conversation and the server → client events. */
export function conversationRoom(conversationId: string): string {
  return `conversation:${conversationId}`;
}

export interface MessageNewEvent {
  conversationId: string;
  messageId: string;
  role: 'user' | 'bot';
  text: string;
  createdAt: string;
  /** Files sent with the message, in order; absent when there are none. */
  attachments?: AttachmentSummary[];
}

export interface MessageChunkEvent {
  conversationId: string;
  messageId: string;
  delta: string;
}

export interface MessageErrorEvent {
  conversationId: string;
  error: string;
}

export interface ServerToClientEvents {
  'message:new': (event: MessageNewEvent) => void;
  'message:chunk': (event: MessageChunkEvent) => void;
  'message:error': (event: MessageErrorEvent) => void;
}
