// @ts-check
// botserver web page: the chat, and for admins and operators the console. Plain ES2022 modules, no framework, no
// build step.
//
// Security rules every module keeps:
// - No token is ever written to localStorage, sessionStorage or a cookie. The signed-in session is the HttpOnly
//   cookie set by the server; the Socket.IO handshake token (GET /auth/socket-token, or a guest token) lives in a
//   variable only and a fresh one is fetched before every (re)connect.
// - Every text from the server or the user is rendered with textContent, never as HTML.
// - State-changing requests carry the CSRF token from the readable botserver_csrf cookie (file uploads too).
// - Files are shown only through GET /api/files/:id/content (same origin, the session cookie): file names are text.
// - Nothing inline: no inline script or style, no eval (the page's CSP forbids them).

import { initAuth, showLogin, showPasswordChange } from './auth.js';
import { startGuest } from './home.js';
import { api } from './http.js';
import { initRouter, route } from './router.js';
import { setSession } from './session.js';
import { showNotice } from './shell.js';

/** @typedef {import('../types/api').Me} Me */

async function start() {
  initAuth(() => route());
  initRouter();

  const wantedBot = new URLSearchParams(location.search).get('bot');
  /** @type {import('./http.js').ApiResult<Me>} */
  const me = await api('GET', '/api/me');
  if (me.status === 200 && me.data !== null) {
    setSession('user', me.data);
    await route(location.hash, wantedBot);
    return;
  }
  if (me.error === 'password_change_required') {
    showPasswordChange();
    return;
  }
  if (wantedBot !== null) {
    await startGuest(wantedBot);
    return;
  }
  showLogin();
}

start().catch(() => {
  showNotice('The page could not start. Reload to try again.');
});
