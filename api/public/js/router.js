// @ts-check
// The signed-in page's sections, named in the address fragment (`#/bots/<id>`), so reload, back and forward work.
// Console sections are for staff only (Users and Audit for admins), whose page loads the console's modules on first
// use; everything else is the chat.

import { showBots, showChatHome } from './home.js';
import { isStaff, session } from './session.js';
import { showNotice } from './shell.js';

/** @type {Promise<typeof import('./console/index.js')> | null} */
let loadingConsole = null;

function loadConsole() {
  loadingConsole ??= import('./console/index.js').then((module) => {
    module.initConsole((hash) => void route(hash));
    return module;
  });
  return loadingConsole;
}

/**
 * Shows the section the address names (a signed-in user's home). A section the account may not see, and any other
 * fragment, is the chat.
 * @param {string} [hash]
 * @param {string | null} [openBotId] a bot to open in the chat (`?bot=<id>` for a signed-in user)
 */
export async function route(hash = location.hash, openBotId = null) {
  if (session.mode !== 'user') return;
  showNotice('');
  if (isStaff()) {
    try {
      const consoleModule = await loadConsole();
      if (await consoleModule.routeConsole(hash)) return;
    } catch {
      // The console's modules did not load (network, rate limit): the chat still works; the next visit tries again.
      loadingConsole = null;
      showNotice('The console could not be loaded. Reload the page to try again.');
    }
  }
  if (hash === '#/chat') await showBots();
  else await showChatHome(openBotId);
}

export function initRouter() {
  window.addEventListener('hashchange', () => {
    if (location.hash === '' || location.hash.startsWith('#/')) void route();
  });
}
