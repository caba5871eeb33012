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
export { insertMessage, findMessage, findReplyTo, listMessages, toMessageEvent, type StoredMessage, type NewMessage } from './messages.js';
export { ChatEmitter } from './emitter.js';
