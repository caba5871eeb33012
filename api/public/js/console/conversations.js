// @ts-check
// The tenant's conversations, newest activity first, filtered by status and bot; refreshed on every
// `conversation:status` and every 15 s while shown.

import { handleSessionFailure } from '../auth.js';
import { byId, el } from '../dom.js';
import { formatTime } from '../format.js';
import { api, describeError } from '../http.js';
import { session } from '../session.js';
import { onLeave, showView } from '../shell.js';
import { onConversationStatus, reportWaiting } from './feed.js';
import { cell } from './forms.js';

/** @typedef {import('../../types/api').Bot} Bot */
/** @typedef {import('../../types/api').ConversationView} ConversationView */
/** @typedef {import('../../types/api').ConversationList} ConversationList */

const PAGE_SIZE = 50;
const CHANNELS = { web: 'Web chat', email: 'E-mail' };
const VISITORS = { guest: 'Guest', user: 'Signed-in user', email: 'E-mail correspondent' };

const ui = {
  status: byId('conversation-status-filter', HTMLSelectElement),
  bot: byId('conversation-bot-filter', HTMLSelectElement),
  summary: byId('conversations-status', HTMLElement),
  table: byId('conversation-table', HTMLTableElement),
  rows: byId('conversation-rows', HTMLElement),
  empty: byId('conversations-empty', HTMLElement),
  more: byId('conversations-more', HTMLButtonElement),
};

/** @type {(() => void) | null} */
let unsubscribe = null;
/** @type {ReturnType<typeof setTimeout> | null} */
let reloadTimer = null;
/** Bumped on every load, so a slow answer never overwrites a newer one. */
let generation = 0;
/** @type {ConversationView[]} */
let shown = [];

onLeave('conversations', () => {
  unsubscribe?.();
  unsubscribe = null;
  if (reloadTimer !== null) clearTimeout(reloadTimer);
  reloadTimer = null;
});

/** @param {import('../../types/api').ConversationStatus} status @param {string | null} operatorId */
export function statusText(status, operatorId) {
  if (status === 'waiting') return 'Waiting for a person';
  if (status === 'operator') return operatorId !== null && operatorId === session.me?.id ? 'With you' : 'With an operator';
  return 'With the bot';
}

/** @param {ConversationView} conversation */
function row(conversation) {
  const when = formatTime(conversation.lastActivityAt);
  const open = el('a', { text: 'Open', className: 'button secondary small', attrs: { href: `#/conversations/${encodeURIComponent(conversation.id)}`, 'aria-label': `Open the conversation with ${conversation.botName}, last active ${when}` } });
  return el(
    'tr',
    { data: { conversationId: conversation.id, status: conversation.status } },
    el('th', { text: when, attrs: { scope: 'row' } }),
    cell(CHANNELS[conversation.channel] ?? String(conversation.channel)),
    cell(String(conversation.botName)),
    cell(VISITORS[conversation.visitor] ?? String(conversation.visitor)),
    el('td', {}, el('span', { className: `state state-${conversation.status}`, text: statusText(conversation.status, conversation.operatorId) })),
    el('td', { className: 'row-actions' }, open),
  );
}

/** @param {string | undefined} before the last activity of the oldest row shown, for the next page */
async function load(before) {
  const mine = (generation += 1);
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (ui.status.value !== '') query.set('status', ui.status.value);
  if (ui.bot.value !== '') query.set('botId', ui.bot.value);
  if (before !== undefined) query.set('before', before);
  /** @type {import('../http.js').ApiResult<ConversationList>} */
  const result = await api('GET', `/api/conversations?${query.toString()}`);
  if (mine !== generation) return;
  if (result.status !== 200 || result.data === null) {
    if (!handleSessionFailure(result)) ui.summary.textContent = describeError(result);
    return;
  }
  const page = result.data.conversations ?? [];
  shown = before === undefined ? page : [...shown, ...page];
  ui.rows.replaceChildren(...shown.map(row));
  ui.table.hidden = shown.length === 0;
  ui.empty.hidden = shown.length > 0;
  ui.more.hidden = page.length < PAGE_SIZE;
  reportWaiting(result.data.waiting);
  const waiting = result.data.waiting === 1 ? '1 conversation is waiting for a person.' : `${result.data.waiting} conversations are waiting for a person.`;
  ui.summary.textContent = `${shown.length === 1 ? '1 conversation' : `${shown.length} conversations`} shown. ${waiting}`;
}

/** A burst of events causes one reload. */
function reloadSoon() {
  if (reloadTimer !== null) return;
  reloadTimer = setTimeout(() => {
    reloadTimer = null;
    void load(undefined);
  }, 300);
}

async function loadBotFilter() {
  /** @type {import('../http.js').ApiResult<{ bots?: Bot[] }>} */
  const result = await api('GET', '/api/bots');
  if (result.status !== 200) return;
  const selected = ui.bot.value;
  ui.bot.replaceChildren(el('option', { text: 'All bots', attrs: { value: '' } }), ...(result.data?.bots ?? []).map((bot) => el('option', { text: bot.name, attrs: { value: bot.id } })));
  ui.bot.value = selected;
  if (ui.bot.value !== selected) ui.bot.value = '';
}

export async function showConversations() {
  showView('conversations');
  unsubscribe?.();
  unsubscribe = onConversationStatus(() => reloadSoon());
  await Promise.all([loadBotFilter(), load(undefined)]);
}

ui.status.addEventListener('change', () => void load(undefined));
ui.bot.addEventListener('change', () => void load(undefined));
ui.more.addEventListener('click', () => {
  const oldest = shown.at(-1);
  if (oldest !== undefined) void load(oldest.lastActivityAt);
});
