// @ts-check
// The console's bot list.

import { handleSessionFailure } from '../auth.js';
import { byId, el } from '../dom.js';
import { api, describeError } from '../http.js';
import { announce, showView } from '../shell.js';
import { cell, confirmAction } from './forms.js';

/** @typedef {import('../../types/api').Bot} Bot */

const ui = {
  rows: byId('console-bot-rows', HTMLElement),
  table: byId('console-bot-table', HTMLTableElement),
  empty: byId('console-bots-empty', HTMLElement),
  status: byId('console-bots-status', HTMLElement),
};

/** @param {string} id */
export const botPath = (id) => `/api/bots/${encodeURIComponent(id)}`;

/**
 * Deletes a bot once confirmed. @param {Bot} bot
 * @returns {Promise<{ deleted: boolean, error?: string }>}
 */
export async function deleteBot(bot) {
  const confirmed = await confirmAction({
    title: `Delete “${bot.name}”?`,
    text: 'Nobody can chat with it afterwards, and its guest link and widget stop working. This cannot be undone.',
    confirm: 'Delete bot',
  });
  if (!confirmed) return { deleted: false };
  const result = await api('DELETE', botPath(bot.id));
  if (result.status === 204) {
    announce(`Bot “${bot.name}” deleted.`);
    return { deleted: true };
  }
  if (handleSessionFailure(result)) return { deleted: false };
  return { deleted: false, error: describeError(result) };
}

/** @param {Bot} bot */
function row(bot) {
  const edit = el('a', { text: 'Edit', className: 'button secondary small', attrs: { href: `#/bots/${encodeURIComponent(bot.id)}`, 'aria-label': `Edit ${bot.name}` } });
  const remove = el('button', { text: 'Delete', className: 'danger small', attrs: { type: 'button', 'aria-label': `Delete ${bot.name}` } });
  remove.addEventListener('click', () => {
    void deleteBot(bot).then(async (outcome) => {
      if (outcome.error !== undefined) ui.status.textContent = `“${bot.name}” was not deleted: ${outcome.error}`;
      if (outcome.deleted) await showBotList();
    });
  });
  const name = el('a', { text: bot.name, attrs: { href: `#/bots/${encodeURIComponent(bot.id)}` } });
  return el(
    'tr',
    { data: { botId: bot.id } },
    el('th', { attrs: { scope: 'row' } }, name),
    cell(bot.public ? 'Public' : 'Private'),
    cell(String(Array.isArray(bot.rules) ? bot.rules.length : 0)),
    cell(bot.llm === null || bot.llm === undefined ? 'Fallback reply' : 'Language model'),
    cell(bot.email === null || bot.email === undefined ? '—' : 'Configured'),
    el('td', { className: 'row-actions' }, edit, remove),
  );
}

/** @param {boolean} [focus] move the focus to the heading (on navigation) */
export async function showBotList(focus = true) {
  if (focus) showView('console-bots');
  /** @type {import('../http.js').ApiResult<{ bots?: Bot[] }>} */
  const result = await api('GET', '/api/bots');
  if (result.status !== 200) {
    if (!handleSessionFailure(result)) ui.status.textContent = describeError(result);
    return;
  }
  const bots = result.data?.bots ?? [];
  ui.rows.replaceChildren(...bots.map(row));
  ui.table.hidden = bots.length === 0;
  ui.empty.hidden = bots.length > 0;
}
