// @ts-check
// Who is using the page. Nothing of it is persisted: the session itself is the HttpOnly cookie, a guest's token
// lives in this object only.

/** @typedef {import('../types/api').Me} Me */
/** @typedef {'anonymous' | 'user' | 'guest'} Mode */

/** @type {{ mode: Mode, me: Me | null, guest: { token: string, conversationId: string } | null }} */
export const session = { mode: 'anonymous', me: null, guest: null };

/** @type {Array<() => void>} */
const listeners = [];

/** Runs `listener` after every change of who is signed in. @param {() => void} listener */
export function onSessionChange(listener) {
  listeners.push(listener);
}

/** @param {Mode} mode @param {Me | null} me */
export function setSession(mode, me) {
  session.mode = mode;
  session.me = me;
  if (mode !== 'guest') session.guest = null;
  for (const listener of listeners) listener();
}

/** @param {string} role */
export function hasRole(role) {
  return session.mode === 'user' && session.me !== null && Array.isArray(session.me.roles) && session.me.roles.includes(role);
}

/** Admins and operators see the console. */
export const isStaff = () => hasRole('admin') || hasRole('operator');
export const isAdmin = () => hasRole('admin');

/** The guest token for requests and the handshake, when the visitor is a guest. */
export const guestToken = () => (session.mode === 'guest' ? session.guest?.token : undefined);
