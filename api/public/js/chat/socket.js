// @ts-check
// One Socket.IO connection with a fresh handshake token on every (re)connect.

import { api } from '../http.js';

/** @typedef {import('socket.io-client').Socket} Socket */

/**
 * The handshake token: a guest's token, or the cookie session's short-lived access token (GET /auth/socket-token,
 * kept in memory only and asked for again before every connect).
 * @param {string | undefined} guestToken
 * @returns {Promise<string>}
 */
export async function handshakeToken(guestToken) {
  if (guestToken !== undefined) return guestToken;
  /** @type {import('../http.js').ApiResult<{ token?: unknown }>} */
  const result = await api('GET', '/auth/socket-token');
  return result.status === 200 && typeof result.data?.token === 'string' ? result.data.token : '';
}

/**
 * A socket that is not connected yet (call `.connect()` once its listeners are set), or null when the Socket.IO
 * client did not load.
 * @param {() => string | undefined} guestToken
 * @returns {Socket | null}
 */
export function createSocket(guestToken) {
  const socketIo = globalThis.io;
  if (typeof socketIo !== 'function') return null;
  return socketIo({
    path: '/socket.io',
    // WebSocket only: no long-polling, so no sticky sessions are needed across several API processes.
    transports: ['websocket'],
    autoConnect: false,
    reconnectionDelay: 1000,
    reconnectionDelayMax: 5000,
    auth: (callback) => {
      handshakeToken(guestToken()).then(
        (token) => callback({ token }),
        () => callback({ token: '' }),
      );
    },
  });
}
