// @ts-check
// The console, loaded only for admins and operators (a `user`'s page never fetches these modules): its sections in
// the address fragment and its navigation.

import { isAdmin, isStaff } from '../session.js';
import { showAudit } from './audit.js';
import { showBotEditor } from './bot-editor.js';
import { showBotList } from './bots.js';
import { showConversations } from './conversations.js';
import { showLiveConversation } from './live.js';
import { initNav, markSection } from './nav.js';
import { showUsers } from './users.js';

export { markSection };

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

/** @param {(hash: string) => void} route the page's router, for the navigation's links */
export function initConsole(route) {
  initNav(route);
}

/**
 * Shows the console section the fragment names, when the account may see it.
 * @param {string} hash
 * @returns {Promise<boolean>} false when the fragment names no console section (the chat is shown instead)
 */
export async function routeConsole(hash) {
  for (const candidate of ROUTES) {
    const match = candidate.pattern.exec(hash);
    if (match === null || !isStaff() || (candidate.admin === true && !isAdmin())) continue;
    markSection(candidate.section);
    await candidate.show(match[1] ?? '');
    return true;
  }
  markSection('chat');
  return false;
}
