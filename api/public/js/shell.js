// @ts-check
// The page's frame: which view is shown, the notice line, the signed-in account, the screen-reader announcer.

import { byId } from './dom.js';
import { onSessionChange, session } from './session.js';

export const shell = {
  main: byId('main', HTMLElement),
  notice: byId('notice', HTMLElement),
  account: byId('account', HTMLElement),
  accountName: byId('account-name', HTMLElement),
  logout: byId('logout-button', HTMLButtonElement),
  announcer: byId('announcer', HTMLElement),
  skipLink: byId('skip-link', HTMLAnchorElement),
};

/** @type {Map<string, () => void>} */
const leaveHooks = new Map();
let current = 'loading';

/** Runs `hook` whenever the page leaves this view (stop timers, close sockets). @param {string} view @param {() => void} hook */
export function onLeave(view, hook) {
  leaveHooks.set(view, hook);
}

/** The view now shown (`chat`, `console-bots`, …). */
export const currentView = () => current;

/**
 * Shows one view (`<section id="view-NAME">`) and moves the focus to its heading, or to `focusTarget`.
 * @param {string} name
 * @param {HTMLElement} [focusTarget]
 */
export function showView(name, focusTarget) {
  if (current !== name) leaveHooks.get(current)?.();
  current = name;
  for (const view of shell.main.querySelectorAll('section.view')) {
    if (view instanceof HTMLElement) view.hidden = view.id !== `view-${name}`;
  }
  const target = focusTarget ?? document.getElementById(`view-${name}`)?.querySelector('h2');
  if (target instanceof HTMLElement) target.focus();
}

/** @param {string} text */
export function showNotice(text) {
  shell.notice.textContent = text;
  shell.notice.hidden = text === '';
}

/** Says something to screen readers without moving the focus. @param {string} text */
export function announce(text) {
  // Cleared first, so the same sentence twice is announced twice.
  shell.announcer.textContent = '';
  setTimeout(() => {
    shell.announcer.textContent = text;
  }, 50);
}

onSessionChange(() => {
  shell.account.hidden = session.mode !== 'user';
  shell.accountName.textContent = session.mode === 'user' && session.me !== null ? session.me.email : '';
});

// The skip link moves the focus without changing the address (the console's routes live in the fragment).
shell.skipLink.addEventListener('click', (event) => {
  event.preventDefault();
  shell.main.focus();
});
