// @ts-check
// The console's navigation: shown to admins and operators only (Users and Audit to admins, Queues to admins of the
// operator tenant), the current section marked, and the live count of conversations waiting for a person.

import { byId } from '../dom.js';
import { isAdmin, isStaff, onSessionChange, session } from '../session.js';
import { announce } from '../shell.js';
import { onWaitingCount, startFeed, stopFeed } from './feed.js';

const ui = {
  nav: byId('console-nav', HTMLElement),
  usersItem: byId('nav-users-item', HTMLElement),
  auditItem: byId('nav-audit-item', HTMLElement),
  queuesItem: byId('nav-queues-item', HTMLElement),
  waiting: byId('nav-waiting', HTMLElement),
  waitingCount: byId('nav-waiting-count', HTMLElement),
};

function applySession() {
  const staff = isStaff();
  ui.nav.hidden = !staff;
  ui.usersItem.hidden = !isAdmin();
  ui.auditItem.hidden = !isAdmin();
  ui.queuesItem.hidden = !(staff && session.me?.queues === true);
  document.body.classList.toggle('console', staff);
  if (staff) {
    startFeed();
  } else {
    stopFeed();
    ui.waiting.hidden = true;
  }
}

onWaitingCount((count, previous) => {
  ui.waitingCount.textContent = String(count);
  ui.waiting.hidden = count === 0;
  if (previous !== null && count > previous) announce(count === 1 ? 'A visitor is waiting for a person.' : `${count} visitors are waiting for a person.`);
});

/** Marks the link of the section shown (`bots`, `conversations`, …; `chat` for the chat side). @param {string} section */
export function markSection(section) {
  for (const link of ui.nav.querySelectorAll('a[data-section]')) {
    if (!(link instanceof HTMLAnchorElement)) continue;
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

/**
 * Shows the navigation for the signed-in account now and after every change of account, and follows a click on a
 * link to the current address too (the fragment does not change, so no hashchange comes).
 * @param {(hash: string) => void} route
 */
export function initNav(route) {
  applySession();
  onSessionChange(applySession);
  ui.nav.addEventListener('click', (event) => {
    const link = event.target instanceof Element ? event.target.closest('a[data-section]') : null;
    if (!(link instanceof HTMLAnchorElement) || link.hash !== location.hash) return;
    event.preventDefault();
    route(link.hash);
  });
}
