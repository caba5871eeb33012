// @ts-check
// One open conversation: its history, the live Socket.IO room, the composer, and the handoff state. Used by the
// page's chat (a visitor: a user or a guest), the console's live view (staff) and the widget (a guest).

import { api, describeError } from '../http.js';
import { createSocket } from './socket.js';
import { MessageLog } from './messages.js';

/** @typedef {import('../../types/api').ChatMessage} ChatMessage */
/** @typedef {import('../../types/api').ChunkEvent} ChunkEvent */
/** @typedef {import('../../types/api').ConversationStatus} ConversationStatus */
/** @typedef {import('../../types/api').ConversationView} ConversationView */
/** @typedef {import('../../types/api').StatusEvent} StatusEvent */
/** @typedef {import('../../types/api').Ack} Ack */
/** @typedef {import('socket.io-client').Socket} Socket */
/** @typedef {import('./uploads.js').PendingUploads} PendingUploads */
/** @typedef {import('./uploads.js').PendingFile} PendingFile */
/** @typedef {import('../http.js').ApiResult<unknown>} AnyResult */

const SEND_TIMEOUT_MS = 10_000;
const RETRY_DELAY_MS = 3_000;
/** The longest wait between automatic resends of an unconfirmed message. */
const MAX_RESEND_DELAY_MS = 30_000;

const STATUS_TEXT = {
  connecting: 'Connecting…',
  online: 'Connected',
  reconnecting: 'Connection lost — reconnecting…',
  offline: 'Disconnected',
};

/** What each side reads when the conversation changes hands. */
const HANDOFF_LINES = {
  visitor: { waiting: 'Waiting for a person…', operator: 'A person has joined', bot: 'The bot is back' },
  staff: { waiting: 'The visitor asked for a person', operator: 'An operator took over', bot: 'Handed back to the bot' },
};

/**
 * @typedef {object} ChatElements
 * @property {HTMLElement} status the connection status pill
 * @property {HTMLElement} messages the `role="log"` list
 * @property {HTMLFormElement} composeForm
 * @property {HTMLTextAreaElement} composeInput
 * @property {HTMLButtonElement} send
 * @property {HTMLButtonElement} [handoff] a visitor's "Talk to a person"
 */

/**
 * @typedef {object} ChatOptions
 * @property {'visitor' | 'staff'} perspective
 * @property {() => string | undefined} guestToken the guest token, or undefined for the cookie session
 * @property {(result: { status: number, error?: string | undefined }) => boolean} onSessionFailure true when it
 *   handled an answer that means "not signed in any more" (or "change your password first")
 * @property {(text: string) => void} notify shows a page-level notice
 * @property {(view: { status: ConversationStatus, operatorId: string | null }) => void} [onStatus] after every
 *   known change of the conversation's handoff state
 * @property {PendingUploads} [uploads] files for the next message (signed-in visitors)
 * @property {() => string | undefined} [selfId] the signed-in account's id (staff: "You took over")
 */

/** @param {unknown} value @returns {value is ConversationStatus} */
const isStatus = (value) => value === 'bot' || value === 'waiting' || value === 'operator';

export class Chat {
  /** @param {ChatElements} elements @param {ChatOptions} options */
  constructor(elements, options) {
    this.ui = elements;
    this.options = options;
    this.log = new MessageLog(elements.messages, options.perspective);
    /** @type {string | null} */
    this.conversationId = null;
    /** @type {Socket | null} */
    this.socket = null;
    this.joined = false;
    /** whether this conversation's room was joined once already (a later join is a rejoin after a disconnect) */
    this.joinedBefore = false;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
    /** a message whose send was not confirmed: retrying the same text and files reuses its clientMessageId @type {{ key: string, clientMessageId: string } | null} */
    this.pendingSend = null;
    /** the automatic resend of an unconfirmed message @type {ReturnType<typeof setTimeout> | null} */
    this.resendTimer = null;
    /** unconfirmed sends in a row, for the growing wait when the server named none */
    this.resendAttempt = 0;
    /** @type {ConversationStatus | null} */
    this.handoffStatus = null;
    /** what the server said of the conversation when it was opened (null when it did not say) @type {ConversationView | null} */
    this.view = null;

    elements.composeForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    elements.composeInput.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        if (!elements.send.disabled) elements.composeForm.requestSubmit();
      }
    });
    elements.handoff?.addEventListener('click', () => void this.requestHandoff());
  }

  /** Requests as the visitor: the guest token, or the cookie session. */
  requestOptions() {
    const bearer = this.options.guestToken();
    return bearer === undefined ? {} : { bearer };
  }

  /**
   * Shows a conversation: its stored messages, then its live room.
   * @param {string} conversationId
   */
  async open(conversationId) {
    this.leave();
    this.conversationId = conversationId;
    this.ui.composeInput.value = '';
    this.setConnection('connecting');
    const path = `/api/conversations/${encodeURIComponent(conversationId)}`;
    /** @type {Promise<import('../http.js').ApiResult<{ messages?: ChatMessage[] }>>} */
    const historyRequest = api('GET', `${path}/messages`, this.requestOptions());
    /** @type {Promise<import('../http.js').ApiResult<ConversationView>>} */
    const viewRequest = api('GET', path, this.requestOptions());
    const [history, view] = await Promise.all([historyRequest, viewRequest]);
    if (this.conversationId !== conversationId) return;
    if (history.status !== 200) {
      if (this.options.onSessionFailure(history)) return;
      this.setConnection('offline');
      this.options.notify(describeError(history));
      return;
    }
    for (const message of history.data?.messages ?? []) this.log.show({ ...message, conversationId });
    this.view = view.status === 200 ? view.data : null;
    if (this.view !== null && isStatus(this.view.status)) this.applyStatus(this.view, false);
    else this.updateHandoffButton();
    this.connect();
  }

  /** Leaves the conversation: closes the socket, forgets the messages and pending files. */
  leave() {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.resendTimer !== null) clearTimeout(this.resendTimer);
    this.resendTimer = null;
    this.resendAttempt = 0;
    if (this.socket !== null) {
      this.socket.removeAllListeners();
      this.socket.disconnect();
    }
    this.socket = null;
    this.joined = false;
    this.joinedBefore = false;
    this.conversationId = null;
    this.handoffStatus = null;
    this.view = null;
    this.pendingSend = null;
    this.log.clear();
    this.options.uploads?.discardAll();
    this.updateComposer();
    this.updateHandoffButton();
  }

  /** @param {keyof typeof STATUS_TEXT} state @param {string} [text] */
  setConnection(state, text = STATUS_TEXT[state]) {
    this.ui.status.dataset.state = state;
    this.ui.status.textContent = text;
  }

  updateComposer() {
    const ready = this.socket !== null && this.socket.connected && this.joined;
    this.ui.send.disabled = !ready;
    this.ui.composeInput.setAttribute('aria-disabled', String(!ready));
  }

  updateHandoffButton() {
    const button = this.ui.handoff;
    if (button === undefined) return;
    // A visitor may ask while the bot answers; once waiting or with a person, there is nothing more to ask for.
    button.hidden = this.conversationId === null || (this.handoffStatus !== null && this.handoffStatus !== 'bot');
  }

  /**
   * A new handoff state from the server (an answer or a `conversation:status` event): a line in the log when it
   * changed, then the buttons.
   * @param {{ status: ConversationStatus, operatorId: string | null }} view
   * @param {boolean} announce
   */
  applyStatus({ status, operatorId }, announce) {
    const changed = this.handoffStatus !== status;
    const first = this.handoffStatus === null;
    this.handoffStatus = status;
    // The first state seen only says how things stand (a line only when it is not the usual "the bot answers").
    if (changed && (announce || (first && status !== 'bot'))) {
      const mine = this.options.perspective === 'staff' && status === 'operator' && operatorId !== null && operatorId === this.options.selfId?.();
      this.log.statusLine(mine ? 'You took over' : HANDOFF_LINES[this.options.perspective][status]);
    }
    this.updateHandoffButton();
    this.options.onStatus?.({ status, operatorId });
  }

  /** A visitor asks for a person: the conversation waits in the operators' list. */
  async requestHandoff() {
    const conversationId = this.conversationId;
    const button = this.ui.handoff;
    if (conversationId === null || button === undefined) return;
    button.disabled = true;
    /** @type {import('../http.js').ApiResult<ConversationView>} */
    const result = await api('POST', `/api/conversations/${encodeURIComponent(conversationId)}/handoff-request`, { ...this.requestOptions(), body: {} });
    button.disabled = false;
    if (this.conversationId !== conversationId) return;
    if (result.status === 200 && result.data !== null && isStatus(result.data.status)) {
      this.applyStatus(result.data, true);
      this.ui.composeInput.focus();
      return;
    }
    if (this.options.onSessionFailure(result)) return;
    this.log.errorLine(`Your request for a person could not be sent. ${describeError(result)}`);
  }

  connect() {
    const socket = createSocket(() => this.options.guestToken());
    if (socket === null) {
      this.setConnection('offline', 'Chat client failed to load');
      return;
    }
    const conversationId = this.conversationId;
    if (conversationId === null) return;
    this.socket = socket;

    socket.on('connect', () => {
      this.setConnection('connecting', 'Joining…');
      this.join(socket, conversationId);
    });
    socket.on('disconnect', (reason) => {
      this.joined = false;
      this.updateComposer();
      if (reason === 'io client disconnect') return;
      this.setConnection('reconnecting');
      // The server ended this connection on purpose (shutdown or abuse): try again once, a little later.
      if (reason === 'io server disconnect') this.scheduleReconnect(socket, RETRY_DELAY_MS * 2);
    });
    socket.on('connect_error', (error) => {
      this.joined = false;
      this.updateComposer();
      if (socket.active) {
        // A transport failure: the client retries by itself with backoff.
        this.setConnection('reconnecting');
        return;
      }
      void this.onHandshakeRefused(socket, error?.message ?? '');
    });
    socket.on('message:new', (/** @type {Partial<ChatMessage>} */ event) => {
      if (event?.conversationId === this.conversationId) this.log.show(event);
    });
    socket.on('message:chunk', (/** @type {Partial<ChunkEvent>} */ event) => {
      if (event?.conversationId === this.conversationId) this.log.chunk(event);
    });
    socket.on('message:error', (/** @type {{ conversationId?: string, error?: unknown }} */ event) => {
      if (event?.conversationId !== this.conversationId) return;
      this.log.endStreaming();
      this.log.errorLine(`The bot could not answer (${typeof event.error === 'string' ? event.error : 'error'}). Try again.`);
    });
    socket.on('conversation:status', (/** @type {Partial<StatusEvent>} */ event) => {
      if (event?.conversationId !== this.conversationId || !isStatus(event.status)) return;
      this.applyStatus({ status: event.status, operatorId: typeof event.operatorId === 'string' ? event.operatorId : null }, true);
    });
    socket.connect();
  }

  /** @param {Socket} socket @param {number} delay */
  scheduleReconnect(socket, delay) {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.socket === socket && !socket.connected) socket.connect();
    }, delay);
  }

  /**
   * The server's middleware refused the handshake: find out why and act on it.
   * @param {Socket} socket
   * @param {string} reason
   */
  async onHandshakeRefused(socket, reason) {
    const guest = this.options.guestToken() !== undefined;
    if (reason === 'unauthorized' && guest) {
      this.setConnection('offline');
      this.options.notify('This guest chat has expired. Reload the page to start a new one.');
      return;
    }
    if (reason === 'unauthorized') {
      const me = await api('GET', '/api/me');
      if (this.socket !== socket) return;
      if (this.options.onSessionFailure(me)) return;
    } else if (reason === 'password_change_required') {
      this.options.onSessionFailure({ status: 403, error: reason });
      return;
    } else if (reason === 'mfa_enrollment_required') {
      this.setConnection('offline');
      this.options.notify(describeError({ error: reason }));
      return;
    }
    this.setConnection('reconnecting');
    this.scheduleReconnect(socket, RETRY_DELAY_MS);
  }

  /** @param {Socket} socket @param {string} conversationId */
  join(socket, conversationId) {
    /** @type {{ conversationId: string, after?: string }} */
    const payload = { conversationId };
    // After a disconnect, the server replays what was stored after the last message this page showed.
    if (this.log.lastSeenId !== null) payload.after = this.log.lastSeenId;
    socket.timeout(SEND_TIMEOUT_MS).emit('conversation:join', payload, (/** @type {Error | null} */ error, /** @type {Ack | undefined} */ response) => {
      if (this.socket !== socket || !socket.connected) return;
      if (error !== null || response?.ok !== true) {
        const code = error !== null ? 'timeout' : String(response?.error ?? 'error');
        if (code === 'not_found') {
          this.setConnection('offline');
          this.options.notify('This conversation is not available.');
          return;
        }
        this.setConnection('reconnecting', 'Could not join — retrying…');
        setTimeout(() => {
          if (this.socket === socket && socket.connected) this.join(socket, conversationId);
        }, RETRY_DELAY_MS);
        return;
      }
      const rejoined = this.joinedBefore;
      this.joined = true;
      this.joinedBefore = true;
      this.setConnection('online');
      this.updateComposer();
      // Messages missed while disconnected were replayed by the join; a change of hands is asked for.
      if (rejoined) void this.refreshStatus(conversationId);
    });
  }

  /** @param {string} conversationId */
  async refreshStatus(conversationId) {
    /** @type {import('../http.js').ApiResult<ConversationView>} */
    const view = await api('GET', `/api/conversations/${encodeURIComponent(conversationId)}`, this.requestOptions());
    if (this.conversationId !== conversationId || view.status !== 200 || view.data === null || !isStatus(view.data.status)) return;
    this.applyStatus(view.data, true);
  }

  send() {
    const text = this.ui.composeInput.value.trim();
    const socket = this.socket;
    const conversationId = this.conversationId;
    const uploads = this.options.uploads;
    if (uploads?.uploading === true) {
      uploads.setError('Wait until the files have finished uploading, then press Send.');
      return;
    }
    /** @type {PendingFile[]} */
    const files = uploads?.ready ?? [];
    if (text === '' && files.length === 0) {
      this.ui.composeInput.focus();
      return;
    }
    if (socket === null || !socket.connected || !this.joined || conversationId === null) {
      this.log.errorLine('Not connected. Your message was not sent; try again when the status says Connected.');
      return;
    }
    const attachmentIds = files.flatMap((entry) => (entry.id === null ? [] : [entry.id]));
    // The same text and files retried after an unconfirmed send keep their id, so the server never processes them twice.
    const key = JSON.stringify([text, attachmentIds]);
    const clientMessageId = this.pendingSend?.key === key ? this.pendingSend.clientMessageId : crypto.randomUUID();
    this.pendingSend = { key, clientMessageId };
    /** @type {{ conversationId: string, text: string, clientMessageId: string, attachments?: string[] }} */
    const payload = { conversationId, text, clientMessageId };
    if (attachmentIds.length > 0) payload.attachments = attachmentIds;
    for (const entry of files) entry.sending = true;
    this.ui.send.disabled = true;
    socket.timeout(SEND_TIMEOUT_MS).emit('message:send', payload, (/** @type {Error | null} */ error, /** @type {Ack | undefined} */ response) => {
      if (this.socket !== socket) return;
      this.updateComposer();
      for (const entry of files) entry.sending = false;
      if (error !== null || response?.ok !== true) {
        const code = error !== null ? 'timeout' : String(response?.error ?? 'error');
        if (code === 'unavailable' || code === 'timeout') {
          // A passing outage, or no confirmation: the text stays in the box and goes again with the same id.
          this.scheduleResend(code === 'unavailable' ? response?.retryAfterMs : undefined);
          return;
        }
        this.resendAttempt = 0;
        if (code === 'message_too_large') this.log.errorLine(describeError({ error: code }));
        else if (code === 'not_found') this.log.errorLine('Your message could not be sent: this conversation, or an attached file, is not available to you.');
        else if (code === 'handoff_required') this.log.errorLine(describeError({ error: code }));
        else this.log.errorLine(`Your message could not be sent (${code}). Press Send to try again.`);
        return;
      }
      this.pendingSend = null;
      this.resendAttempt = 0;
      if (this.ui.status.dataset.state === 'reconnecting' && socket.connected) this.setConnection('online');
      if (this.ui.composeInput.value.trim() === text) this.ui.composeInput.value = '';
      uploads?.sent(files);
      // Usually message:new has shown it already; if not, show it now (once, by messageId).
      if (typeof response.messageId === 'string' && !this.log.has(response.messageId)) {
        const attachments = files.flatMap((entry) => (entry.id === null ? [] : [{ id: entry.id, name: entry.name, size: entry.size, type: entry.type }]));
        this.log.show({ messageId: response.messageId, role: this.options.perspective === 'staff' ? 'operator' : 'user', text, attachments });
      }
      this.ui.composeInput.focus();
    });
  }

  /**
   * Sends the unconfirmed message again after the wait the server named (`retryAfterMs` of an `unavailable` ack) or,
   * when it named none, a growing one, with jitter so that many clients do not come back at the same moment. The
   * same text and files keep their clientMessageId, so the server stores the message once however often it comes.
   * @param {number | undefined} retryAfterMs
   */
  scheduleResend(retryAfterMs) {
    this.resendAttempt += 1;
    const named = typeof retryAfterMs === 'number' && Number.isFinite(retryAfterMs) && retryAfterMs > 0 ? retryAfterMs : undefined;
    const base = named ?? Math.min(MAX_RESEND_DELAY_MS, 1000 * 2 ** Math.min(this.resendAttempt - 1, 5));
    this.setConnection('reconnecting', 'Reconnecting… your message will be sent again');
    if (this.resendTimer !== null) clearTimeout(this.resendTimer);
    this.resendTimer = setTimeout(() => {
      this.resendTimer = null;
      if (this.pendingSend === null) return;
      if (this.socket !== null && this.socket.connected && this.joined) this.send();
      else this.scheduleResend(undefined);
    }, base * (0.5 + Math.random()));
  }
}
