// @ts-check
// The page's chat side: the bot list, a signed-in user's conversations, a guest's chat with a public bot.

import { handleSessionFailure, showLogin } from './auth.js';
import { Chat } from './chat/chat.js';
import { PendingUploads } from './chat/uploads.js';
import { byId, el } from './dom.js';
import { isUuid } from './format.js';
import { api, describeError } from './http.js';
import { guestToken, session, setSession } from './session.js';
import { onLeave, showNotice, showView } from './shell.js';

/** @typedef {import('../types/api').Bot} Bot */

const ui = {
  botsEmpty: byId('bots-empty', HTMLElement),
  botList: byId('bot-list', HTMLElement),
  chatTitle: byId('chat-title', HTMLElement),
  back: byId('back-button', HTMLButtonElement),
  composeInput: byId('compose-input', HTMLTextAreaElement),
};

const uploads = new PendingUploads(
  { attach: byId('attach-button', HTMLButtonElement), input: byId('attach-input', HTMLInputElement), list: byId('attachment-list', HTMLElement), error: byId('attach-error', HTMLElement) },
  { onSessionFailure: handleSessionFailure, focusInput: () => ui.composeInput.focus() },
);

const chat = new Chat(
  {
    status: byId('connection-status', HTMLElement),
    messages: byId('message-list', HTMLElement),
    composeForm: byId('compose-form', HTMLFormElement),
    composeInput: ui.composeInput,
    send: byId('send-button', HTMLButtonElement),
    handoff: byId('handoff-button', HTMLButtonElement),
  },
  {
    perspective: 'visitor',
    guestToken,
    // A guest has no session to lose: only a signed-in user is sent to the login or password form.
    onSessionFailure: (result) => session.mode === 'user' && handleSessionFailure(result),
    notify: showNotice,
    uploads,
  },
);
onLeave('chat', () => chat.leave());

/** The conversation named in the address (`?conversation=<id>`): a signed-in user's reload or a shared link. */
function conversationFromUrl() {
  const id = new URLSearchParams(location.search).get('conversation');
  return isUuid(id) ? id : null;
}

/** Keeps a signed-in user's open conversation in the address, so a reload (or the link) opens it again. @param {string | null} conversationId */
function rememberConversation(conversationId) {
  if (session.mode !== 'user') return;
  const search = conversationId === null ? '' : `?conversation=${encodeURIComponent(conversationId)}`;
  if (location.search !== search || location.hash !== '') history.replaceState(null, '', `${location.pathname}${search}`);
}

/**
 * A signed-in user's first view: the conversation in the address, else the bot list (opening `openBotId`).
 * @param {string | null} [openBotId]
 */
export async function showChatHome(openBotId = null) {
  const conversationId = openBotId === null ? conversationFromUrl() : null;
  if (conversationId !== null) {
    await openConversation('Conversation', conversationId);
    return;
  }
  await showBots(openBotId);
}

/** @param {string | null} [openBotId] */
export async function showBots(openBotId = null) {
  chat.leave();
  /** @type {import('./http.js').ApiResult<{ bots?: Bot[] }>} */
  const result = await api('GET', '/api/bots');
  if (result.status !== 200) {
    if (!handleSessionFailure(result)) showNotice(describeError(result));
    return;
  }
  const bots = Array.isArray(result.data?.bots) ? result.data.bots : [];
  ui.botList.replaceChildren(
    ...bots.map((bot) => {
      const button = el('button', { data: { botId: String(bot.id) } }, el('span', { className: 'bot-name', text: String(bot.name) }), el('span', { className: 'bot-meta', text: bot.public === true ? 'Public bot' : 'Private bot' }));
      button.type = 'button';
      button.addEventListener('click', () => void openBot(bot));
      return el('li', {}, button);
    }),
  );
  ui.botsEmpty.hidden = bots.length > 0;
  const wanted = openBotId === null ? undefined : bots.find((bot) => bot.id === openBotId);
  if (wanted !== undefined) {
    await openBot(wanted);
    return;
  }
  rememberConversation(null);
  showView('bots');
}

/** @param {Bot} bot */
async function openBot(bot) {
  showNotice('');
  /** @type {import('./http.js').ApiResult<{ id?: unknown }>} */
  const created = await api('POST', `/api/bots/${encodeURIComponent(bot.id)}/conversations`);
  const id = created.data?.id;
  if (created.status !== 201 || typeof id !== 'string') {
    if (!handleSessionFailure(created)) showNotice(describeError(created));
    return;
  }
  await openConversation(String(bot.name), id);
}

/** A public bot's visitor: a guest token for one new conversation. @param {string} botId @param {string} [title] */
export async function startGuest(botId, title = 'Chat') {
  setSession('guest', null);
  if (!isUuid(botId)) {
    showLogin('This chat link is not valid.');
    return false;
  }
  /** @type {import('./http.js').ApiResult<{ token?: unknown, conversationId?: unknown }>} */
  const result = await api('POST', `/api/bots/${encodeURIComponent(botId)}/guest-token`, { anonymous: true });
  const token = result.data?.token;
  const conversationId = result.data?.conversationId;
  if (result.status !== 200 || typeof token !== 'string' || typeof conversationId !== 'string') {
    showLogin(result.status === 404 ? 'This chat is not available. Sign in to use your bots.' : describeError(result));
    return false;
  }
  session.guest = { token, conversationId };
  await openConversation(title, conversationId);
  return true;
}

/** @param {string} title @param {string} conversationId */
async function openConversation(title, conversationId) {
  ui.chatTitle.textContent = title;
  ui.back.hidden = session.mode !== 'user';
  // Only signed-in users upload files; a guest token cannot.
  uploads.setEnabled(session.mode === 'user');
  rememberConversation(conversationId);
  showView('chat', ui.composeInput);
  await chat.open(conversationId);
}

ui.back.addEventListener('click', () => void showBots());
