// @ts-check
// The console's live feed: a staff socket (the server puts it in the tenant's staff room) that hears every
// `conversation:status`, and the count of conversations waiting for a person (asked again on each event and
// every 15 s).

import { createSocket } from '../chat/socket.js';
import { api } from '../http.js';

/** @typedef {import('../../types/api').StatusEvent} StatusEvent */
/** @typedef {import('../../types/api').ConversationList} ConversationList */
/** @typedef {import('socket.io-client').Socket} Socket */

const REFRESH_MS = 15_000;
/** Several events in a burst cause one request. */
const DEBOUNCE_MS = 300;

/** @type {Socket | null} */
let socket = null;
/** @type {ReturnType<typeof setInterval> | null} */
let timer = null;
/** @type {ReturnType<typeof setTimeout> | null} */
let pending = null;
/** @type {number | null} */
let waiting = null;

/** @type {Set<(event: StatusEvent | null) => void>} */
const statusListeners = new Set();
/** @type {Set<(count: number, previous: number | null) => void>} */
const countListeners = new Set();

/**
 * Calls `listener` on every status change of a conversation of the tenant, and with null on the periodic refresh.
 * @param {(event: StatusEvent | null) => void} listener
 * @returns {() => void} unsubscribes
 */
export function onConversationStatus(listener) {
  statusListeners.add(listener);
  return () => statusListeners.delete(listener);
}

/** @param {(count: number, previous: number | null) => void} listener */
export function onWaitingCount(listener) {
  countListeners.add(listener);
}

/** The count a list answer carried (it has the same `waiting` field). @param {number} count */
export function reportWaiting(count) {
  if (!Number.isInteger(count) || count === waiting) return;
  const previous = waiting;
  waiting = count;
  for (const listener of countListeners) listener(count, previous);
}

async function refreshCount() {
  /** @type {import('../http.js').ApiResult<ConversationList>} */
  const result = await api('GET', '/api/conversations?status=waiting&limit=1');
  if (result.status === 200 && typeof result.data?.waiting === 'number') reportWaiting(result.data.waiting);
}

function scheduleRefresh() {
  if (pending !== null) return;
  pending = setTimeout(() => {
    pending = null;
    void refreshCount();
  }, DEBOUNCE_MS);
}

/** Starts the feed (once signed in as staff). */
export function startFeed() {
  if (socket !== null || timer !== null) return;
  void refreshCount();
  timer = setInterval(() => {
    void refreshCount();
    for (const listener of statusListeners) listener(null);
  }, REFRESH_MS);
  socket = createSocket(() => undefined);
  if (socket === null) return;
  socket.on('conversation:status', (/** @type {Partial<StatusEvent>} */ event) => {
    if (typeof event?.conversationId !== 'string') return;
    scheduleRefresh();
    const status = event.status === 'waiting' || event.status === 'operator' ? event.status : 'bot';
    for (const listener of statusListeners) listener({ conversationId: event.conversationId, status, operatorId: typeof event.operatorId === 'string' ? event.operatorId : null });
  });
  // Missed events while disconnected: the count is asked for again on every reconnect.
  let connectedBefore = false;
  socket.on('connect', () => {
    if (connectedBefore) scheduleRefresh();
    connectedBefore = true;
  });
  socket.connect();
}

/** Stops it (signed out). */
export function stopFeed() {
  if (timer !== null) clearInterval(timer);
  if (pending !== null) clearTimeout(pending);
  timer = null;
  pending = null;
  waiting = null;
  if (socket !== null) {
    socket.removeAllListeners();
    socket.disconnect();
  }
  socket = null;
}
