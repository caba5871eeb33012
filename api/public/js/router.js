// @ts-check
// The signed-in page's sections, named in the address fragment (`#/bots/<id>`), so reload, back and forward work.
// Console sections are for staff only (Users and Audit for admins); everything else is the chat.

import { showAudit } from './console/audit.js';
import { showBotEditor } from './console/bot-editor.js';
import { showBotList } from './console/bots.js';
import { showConversations } from './console/conversations.js';
import { showLiveConversation } from './console/live.js';
import { markSection, onNavigate } from './console/nav.js';
import { showUsers } from './console/users.js';
import { showBots, showChatHome } from './home.js';
import { isAdmin, isStaff, session } from './session.js';
import { showNotice } from './shell.js';

const ID = '([0-9a-fA-F-]{36})';

/** @type {Array<{ pattern: RegExp, section: string, admin?: boolean, show: (id: string) => Promise<void> }>} */
const ROUTES = [
  { pattern: /^#\/bots$/, section: 'bots', show: () => showBotList() },
  { pattern: /^#\/bots\/new$/, section: 'bots', show: () => showBotEditor(null) },
  { pattern: new RegExp(`^#/bots/${ID}$`), section: 'bots', show: (id) => showBotEditor(id) },
  { pattern: /^#\/conversations$/, section: 'conversations', show: () => showConversations() },
  { pattern: new RegExp(`^#/conversations/${ID}$`), section: 'conversations', show: (id) => showLiveConversation(id) },
  { pattern: /^#\/users$/, section: 'users', admin: true, show: () => showUsers() },
  { pattern: /^#\/audit$/, section: 'audit', admin: true, show: () => showAudit() },
];

/**
 * Shows the section the address names (a signed-in user's home). A section the account may not see, and any other
 * fragment, is the chat.
 * @param {string} [hash]
 * @param {string | null} [openBotId] a bot to open in the chat (`?bot=<id>` for a signed-in user)
 */
export async function route(hash = location.hash, openBotId = null) {
  if (session.mode !== 'user') return;
  showNotice('');
  for (const candidate of ROUTES) {
    const match = candidate.pattern.exec(hash);
    if (match === null || !isStaff() || (candidate.admin === true && !isAdmin())) continue;
    markSection(candidate.section);
    await candidate.show(match[1] ?? '');
    return;
  }
  markSection('chat');
  if (hash === '#/chat') await showBots();
  else await showChatHome(openBotId);
}

export function initRouter() {
  window.addEventListener('hashchange', () => {
    if (location.hash === '' || location.hash.startsWith('#/')) void route();
  });
  onNavigate((hash) => void route(hash));
}
