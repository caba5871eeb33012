import type { AttachmentSummary } from '../files/index.js';

/** CONTRACT §4: the Socket.IO room of a conversation and the server → client events. */
export function conversationRoom(conversationId: string): string {
  return `conversation:${conversationId}`;
}

/** The Socket.IO room of one login session's sockets: ending the session ends them, on every API process. */
export function sessionRoom(sessionId: string): string {
  return `session:${sessionId}`;
}

/** The Socket.IO room of a tenant's staff (admins and operators): the console's live list listens there. */
export function staffRoom(tenantId: string): string {
  return `staff:${tenantId}`;
}

/** Who wrote a message: the visitor, the bot, or an operator who took the conversation over. */
export type MessageRole = 'user' | 'bot' | 'operator';

/** Who answers a conversation: the bot, nobody yet (the visitor asked for a person), or an operator. */
export type ConversationStatus = 'bot' | 'waiting' | 'operator';
export const CONVERSATION_STATUSES: readonly ConversationStatus[] = ['bot', 'waiting', 'operator'];

export interface MessageNewEvent {
  conversationId: string;
  messageId: string;
  role: MessageRole;
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

export interface ConversationStatusEvent {
  conversationId: string;
  status: ConversationStatus;
  operatorId: string | null;
}

export interface ServerToClientEvents {
  'message:new': (event: MessageNewEvent) => void;
  'message:chunk': (event: MessageChunkEvent) => void;
  'message:error': (event: MessageErrorEvent) => void;
  'conversation:status': (event: ConversationStatusEvent) => void;
}
