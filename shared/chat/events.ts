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
  /** The knowledge documents a bot's answer came from, best first; absent when none. */
  sources?: MessageSource[];
}

/** One knowledge passage an answer used: its document, the document's title, and where in it. */
export interface MessageSource {
  documentId: string;
  title: string;
  position: string;
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
