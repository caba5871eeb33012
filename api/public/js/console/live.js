// @ts-check
// The live view of one conversation for staff: its messages as they come (the staff socket joins its room),
// "Take over" (the bot stops answering; the operator writes) and "Hand back to the bot".

import { handleSessionFailure } from '../auth.js';
import { Chat } from '../chat/chat.js';
import { byId } from '../dom.js';
import { formatTime } from '../format.js';
import { api, describeError } from '../http.js';
import { session } from '../session.js';
import { announce, onLeave, showNotice, showView } from '../shell.js';
import { statusText } from './conversations.js';

/** @typedef {import('../../types/api').ConversationView} ConversationView */
/** @typedef {import('../../types/api').ConversationStatus} ConversationStatus */

const ui = {
  title: byId('live-title', HTMLElement),
  meta: byId('live-meta', HTMLElement),
  state: byId('live-handoff-state', HTMLElement),
  takeOver: byId('take-over-button', HTMLButtonElement),
  handBack: byId('hand-back-button', HTMLButtonElement),
  error: byId('live-error', HTMLElement),
  composeForm: byId('live-compose-form', HTMLFormElement),
  composeInput: byId('live-compose-input', HTMLTextAreaElement),
};

/** @param {{ status: ConversationStatus, operatorId: string | null }} view */
function showHandoff({ status, operatorId }) {
  const mine = status === 'operator' && operatorId !== null && operatorId === session.me?.id;
  ui.state.textContent = statusText(status, operatorId);
  ui.state.dataset.status = status;
  // Any staff member may take over, also from another operator; only a conversation with a person can be handed back.
  ui.takeOver.hidden = mine;
  ui.takeOver.textContent = status === 'operator' ? 'Take over from the other operator' : 'Take over';
  ui.handBack.hidden = status !== 'operator';
  ui.composeForm.hidden = status !== 'operator';
}

const chat = new Chat(
  {
    status: byId('live-connection-status', HTMLElement),
    messages: byId('live-message-list', HTMLElement),
    composeForm: ui.composeForm,
    composeInput: ui.composeInput,
    send: byId('live-send-button', HTMLButtonElement),
  },
  {
    perspective: 'staff',
    guestToken: () => undefined,
    onSessionFailure: handleSessionFailure,
    notify: showNotice,
    onStatus: showHandoff,
    selfId: () => session.me?.id,
  },
);
onLeave('conversation', () => chat.leave());

/** @param {'POST' | 'DELETE'} method */
async function changeHandoff(method) {
  const conversationId = chat.conversationId;
  if (conversationId === null) return;
  ui.error.textContent = '';
  /** @type {import('../http.js').ApiResult<ConversationView>} */
  const result = await api(method, `/api/conversations/${encodeURIComponent(conversationId)}/handoff`, method === 'POST' ? { body: {} } : {});
  if (chat.conversationId !== conversationId) return;
  if (result.status === 200 && result.data !== null) {
    chat.applyStatus(result.data, true);
    if (method === 'POST') {
      announce('You took over. The bot does not answer until you hand the conversation back.');
      ui.composeInput.focus();
    } else {
      announce('Handed back to the bot.');
      ui.takeOver.focus();
    }
    return;
  }
  if (handleSessionFailure(result)) return;
  ui.error.textContent = `${method === 'POST' ? 'Could not take over' : 'Could not hand back'}: ${describeError(result)}`;
}

ui.takeOver.addEventListener('click', () => void changeHandoff('POST'));
ui.handBack.addEventListener('click', () => void changeHandoff('DELETE'));

/** @param {ConversationView | null} view */
function showMeta(view) {
  if (view === null) {
    ui.title.textContent = 'Conversation';
    ui.meta.textContent = '';
    return;
  }
  ui.title.textContent = `Conversation with ${view.botName}`;
  const channel = view.channel === 'email' ? 'E-mail' : 'Web chat';
  const visitor = view.visitor === 'guest' ? 'a guest' : view.visitor === 'email' ? 'an e-mail correspondent' : 'a signed-in user';
  ui.meta.textContent = `${channel} with ${visitor} · started ${formatTime(view.createdAt)}`;
}

/** @param {string} conversationId */
export async function showLiveConversation(conversationId) {
  ui.error.textContent = '';
  showMeta(null);
  showHandoff({ status: 'bot', operatorId: null });
  ui.state.textContent = '';
  showView('conversation');
  await chat.open(conversationId);
  if (chat.conversationId !== conversationId) return;
  showMeta(chat.view);
  if (chat.view?.channel === 'email') {
    // The server hands only web chats to a person: an e-mail conversation is always answered by its bot.
    ui.takeOver.hidden = true;
    ui.handBack.hidden = true;
    ui.composeForm.hidden = true;
    ui.state.textContent = 'E-mail conversations are answered by the bot.';
  }
}
