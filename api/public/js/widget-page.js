// @ts-check
// The widget's chat page (GET /widget/<botId>, shown in the frame widget.js opens on another site): a guest chat
// with the public bot named in the address. Same origin as the API; the guest token lives in memory only.

import { Chat } from './chat/chat.js';
import { byId } from './dom.js';
import { isUuid } from './format.js';
import { api, describeError } from './http.js';

/** The message widget.js listens for (from this frame only) to close the frame. */
const CLOSE_MESSAGE = 'botserver-widget:close';

const notice = byId('notice', HTMLElement);
const close = byId('widget-close', HTMLButtonElement);
const composeInput = byId('compose-input', HTMLTextAreaElement);

/** @type {string | undefined} */
let token;

/** @param {string} text */
function showNotice(text) {
  notice.textContent = text;
  notice.hidden = text === '';
}

const chat = new Chat(
  {
    status: byId('connection-status', HTMLElement),
    messages: byId('message-list', HTMLElement),
    composeForm: byId('compose-form', HTMLFormElement),
    composeInput,
    send: byId('send-button', HTMLButtonElement),
    handoff: byId('handoff-button', HTMLButtonElement),
  },
  { perspective: 'visitor', guestToken: () => token, onSessionFailure: () => false, notify: showNotice },
);

function closeFrame() {
  // Nothing but "close" is said, so any parent may hear it; widget.js checks that it came from its own frame.
  window.parent.postMessage({ type: CLOSE_MESSAGE }, '*');
}

async function start() {
  const embedded = window.parent !== window;
  close.hidden = !embedded;
  close.addEventListener('click', closeFrame);
  if (embedded) {
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') closeFrame();
    });
  }
  const botId = location.pathname.split('/').filter((part) => part !== '').at(-1) ?? '';
  if (!isUuid(botId)) {
    showNotice('This chat is not available.');
    return;
  }
  /** @type {import('./http.js').ApiResult<{ token?: unknown, conversationId?: unknown }>} */
  const result = await api('POST', `/api/bots/${encodeURIComponent(botId)}/guest-token`, { anonymous: true });
  const conversationId = result.data?.conversationId;
  if (result.status !== 200 || typeof result.data?.token !== 'string' || typeof conversationId !== 'string') {
    showNotice(result.status === 404 ? 'This chat is not available.' : describeError(result));
    return;
  }
  token = result.data.token;
  composeInput.focus();
  await chat.open(conversationId);
}

start().catch(() => showNotice('The chat could not start. Close it and open it again.'));
