export {
  conversationRoom,
  staffRoom,
  sessionRoom,
  CONVERSATION_STATUSES,
  type ConversationStatus,
  type ConversationStatusEvent,
  type MessageRole,
  type MessageNewEvent,
  type MessageChunkEvent,
  type MessageErrorEvent,
  type MessageSource,
  type ServerToClientEvents,
} from './events.js';
export { insertMessage, storeMessage, findMessage, findReplyTo, listMessages, toMessageEvent, openMessageRow, MESSAGE_COLUMNS, type MessageRow, type StoredMessage, type NewMessage } from './messages.js';
export { ChatEmitter } from './emitter.js';
