// @ts-check
// The message list of one conversation: stored messages shown once (by messageId), streamed drafts, error and
// status lines. Always textContent, never HTML. The list is an aria-live log, so each new line is announced.

import { el } from '../dom.js';
import { isUuid } from '../format.js';
import { attachmentList } from './files.js';

/** @typedef {import('../../types/api').ChatMessage} ChatMessage */
/** @typedef {import('../../types/api').ChunkEvent} ChunkEvent */
/** @typedef {import('../../types/api').Source} Source */
/** @typedef {'visitor' | 'staff'} Perspective */

/** Who wrote a message, as the reader sees it: a visitor is "You" to themself and "Visitor" to the operator. */
const AUTHORS = {
  visitor: { user: 'You', bot: 'Bot', operator: 'Operator', error: 'Error' },
  staff: { user: 'Visitor', bot: 'Bot', operator: 'Operator', error: 'Error' },
};

/** @param {unknown} role @returns {'user' | 'bot' | 'operator'} */
function knownRole(role) {
  return role === 'user' || role === 'operator' ? role : 'bot';
}

export class MessageLog {
  /**
   * @param {HTMLElement} list the `role="log"` element
   * @param {Perspective} perspective
   */
  constructor(list, perspective) {
    this.list = list;
    this.perspective = perspective;
    list.dataset.perspective = perspective;
    /** messageId → its <li>, so nothing is shown twice and streamed text is replaced by the final message */
    /** @type {Map<string, HTMLElement>} */
    this.shown = new Map();
    /** @type {Set<string>} */
    this.streaming = new Set();
    /** the newest stored message shown: sent as `after` when (re)joining @type {string | null} */
    this.lastSeenId = null;
  }

  clear() {
    this.shown.clear();
    this.streaming.clear();
    this.lastSeenId = null;
    this.list.replaceChildren();
    this.list.removeAttribute('aria-busy');
  }

  /** @param {string} messageId */
  has(messageId) {
    return this.shown.has(messageId);
  }

  /** @param {'user' | 'bot' | 'operator' | 'error'} kind */
  element(kind) {
    return el('li', { className: `message ${kind}` }, el('span', { className: 'message-author', text: AUTHORS[this.perspective][kind] }), el('p', { className: 'message-text' }));
  }

  /** @param {HTMLElement} item */
  static textOf(item) {
    const text = item.querySelector('.message-text');
    if (!(text instanceof HTMLElement)) throw new Error('message without text');
    return text;
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
  }

  /**
   * Shows a stored message once (by messageId); a streamed draft with the same id gets its final text.
   * @param {Partial<ChatMessage>} message
   */
  show({ messageId, role, text, createdAt, attachments, sources }) {
    if (typeof messageId !== 'string') return;
    let item = this.shown.get(messageId);
    if (item === undefined) {
      item = this.element(knownRole(role));
      item.dataset.messageId = messageId;
      this.list.append(item);
      this.shown.set(messageId, item);
    }
    const textElement = MessageLog.textOf(item);
    textElement.textContent = String(text ?? '');
    const files = Array.isArray(attachments) ? attachments.filter((attachment) => isUuid(attachment?.id)) : [];
    if (files.length > 0 && item.querySelector('.message-files') === null) item.append(attachmentList(files));
    const cited = Array.isArray(sources) ? sources.filter((source) => typeof source?.title === 'string') : [];
    if (cited.length > 0 && item.querySelector('.message-sources') === null) item.append(sourceList(cited));
    // A message of files alone has no text line.
    textElement.hidden = textElement.textContent === '' && item.querySelector('.message-files') !== null;
    if (typeof createdAt === 'string') item.dataset.createdAt = createdAt;
    item.classList.remove('streaming');
    if (this.streaming.delete(messageId) && this.streaming.size === 0) this.list.removeAttribute('aria-busy');
    this.lastSeenId = messageId;
    this.scrollToEnd();
  }

  /**
   * A streamed delta of a bot message: built live, announced once complete (aria-busy while streaming).
   * @param {Partial<ChunkEvent>} event
   */
  chunk({ messageId, delta }) {
    if (typeof messageId !== 'string' || typeof delta !== 'string') return;
    let item = this.shown.get(messageId);
    if (item === undefined) {
      item = this.element('bot');
      item.dataset.messageId = messageId;
      item.classList.add('streaming');
      this.list.append(item);
      this.shown.set(messageId, item);
      this.streaming.add(messageId);
      this.list.setAttribute('aria-busy', 'true');
    }
    if (!this.streaming.has(messageId)) return; // the final message is already shown
    MessageLog.textOf(item).append(delta);
    this.scrollToEnd();
  }

  endStreaming() {
    for (const id of this.streaming) this.shown.get(id)?.classList.remove('streaming');
    this.streaming.clear();
    this.list.removeAttribute('aria-busy');
  }

  /** @param {string} text */
  errorLine(text) {
    const item = this.element('error');
    item.setAttribute('role', 'alert');
    MessageLog.textOf(item).textContent = text;
    this.list.append(item);
    this.scrollToEnd();
  }

  /** A line about the conversation itself ("A person has joined"), announced by the log. @param {string} text */
  statusLine(text) {
    this.list.append(el('li', { className: 'chat-event', text }));
    this.scrollToEnd();
  }
}

/**
 * The documents a bot's answer came from: title and where in it ("page 2", "section Pricing").
 * @param {Source[]} sources
 */
function sourceList(sources) {
  const list = el('ol', { className: 'message-sources', attrs: { 'aria-label': 'Sources' } });
  for (const source of sources) {
    const entry = el('li', {}, el('span', { className: 'source-title', text: source.title }));
    if (typeof source.position === 'string' && source.position !== '') entry.append(el('span', { className: 'source-position', text: ` — ${source.position}` }));
    list.append(entry);
  }
  return list;
}
