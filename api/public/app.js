// botserver web chat: plain ES2022 module, no framework, no build step.
//
// Security rules this file keeps:
// - No token is ever written to localStorage, sessionStorage or a cookie. The signed-in session is the HttpOnly
//   cookie set by the server; the Socket.IO handshake token (GET /auth/socket-token, or a guest token) lives in a
//   variable only and a fresh one is fetched before every (re)connect.
// - Every text from the server or the user is rendered with textContent, never as HTML.
// - State-changing requests carry the CSRF token from the readable botserver_csrf cookie (file uploads too).
// - Files are shown only through GET /api/files/:id/content (same origin, the session cookie): file names are text.

const CSRF_COOKIE = 'botserver_csrf';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SEND_TIMEOUT_MS = 10_000;
const RETRY_DELAY_MS = 3_000;
/** Most files one message may carry (the server's limit). */
const MAX_ATTACHMENTS = 10;
/** A thumbnail whose file is still being stored (409) is tried again this often, waiting 0.5 s, 1 s, 2 s, … */
const THUMBNAIL_RETRIES = 6;
const THUMBNAIL_BACKOFF_MS = 500;

const $ = (id) => {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`missing element #${id}`);
  return element;
};

const ui = {
  main: $('main'),
  notice: $('notice'),
  account: $('account'),
  accountName: $('account-name'),
  logout: $('logout-button'),
  views: {
    loading: $('view-loading'),
    login: $('view-login'),
    password: $('view-password'),
    bots: $('view-bots'),
    chat: $('view-chat'),
  },
  loginForm: $('login-form'),
  loginEmail: $('login-email'),
  loginPassword: $('login-password'),
  totpField: $('totp-field'),
  loginTotp: $('login-totp'),
  loginError: $('login-error'),
  loginSubmit: $('login-submit'),
  passwordForm: $('password-form'),
  passwordUsername: $('password-username'),
  passwordCurrent: $('password-current'),
  passwordNew: $('password-new'),
  passwordConfirm: $('password-confirm'),
  passwordError: $('password-error'),
  passwordSubmit: $('password-submit'),
  botsTitle: $('bots-title'),
  botsEmpty: $('bots-empty'),
  botList: $('bot-list'),
  chatTitle: $('chat-title'),
  back: $('back-button'),
  status: $('connection-status'),
  messages: $('message-list'),
  composeForm: $('compose-form'),
  composeInput: $('compose-input'),
  send: $('send-button'),
  attach: $('attach-button'),
  attachInput: $('attach-input'),
  attachList: $('attachment-list'),
  attachError: $('attach-error'),
};

/** Everything the page knows; nothing of it is persisted. */
const state = {
  /** 'anonymous' | 'user' | 'guest' */
  mode: 'anonymous',
  me: null,
  /** { token, conversationId } for a public bot's visitor, in memory only */
  guest: null,
  conversationId: null,
  socket: null,
  joined: false,
  /** the newest stored message this page has shown: sent as `after` when (re)joining */
  lastSeenId: null,
  /** messageId → its <li>, so nothing is shown twice and streamed text is replaced by the final message */
  shown: new Map(),
  streaming: new Set(),
  retryTimer: null,
  /** a message whose send was not confirmed: retrying the same text and files reuses its clientMessageId */
  pendingSend: null,
  /** files chosen for the next message: { file, name, size, type, status: 'uploading' | 'ready', id, xhr, chip } */
  attachments: [],
};

// ---------------------------------------------------------------------------------------------------------------
// HTTP

function readCookie(name) {
  for (const part of document.cookie.split(';')) {
    const index = part.indexOf('=');
    if (index < 0) continue;
    if (part.slice(0, index).trim() === name) {
      try {
        return decodeURIComponent(part.slice(index + 1).trim());
      } catch {
        return null;
      }
    }
  }
  return null;
}

/**
 * One JSON request. `bearer`: a guest token (no cookies sent); `anonymous`: no cookies at all; otherwise the cookie
 * session with the CSRF header on state-changing requests.
 */
async function api(method, path, { body, bearer, anonymous = false } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (bearer !== undefined) {
    headers.authorization = `Bearer ${bearer}`;
  } else if (!anonymous) {
    const csrf = readCookie(CSRF_COOKIE);
    if (csrf !== null) headers['x-csrf-token'] = csrf;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: bearer !== undefined || anonymous ? 'omit' : 'same-origin',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch {
    return { status: 0, data: null, headers: new Headers(), error: 'network_error' };
  }
  let data = null;
  const text = await response.text().catch(() => '');
  if (text !== '') {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  const error = response.ok ? undefined : typeof data?.error === 'string' ? data.error : `http_${response.status}`;
  return { status: response.status, data, headers: response.headers, error };
}

function retryAfterText(result) {
  const seconds = Number(result.headers.get('retry-after'));
  if (!Number.isFinite(seconds) || seconds <= 0) return 'later';
  return seconds >= 120 ? `in ${Math.ceil(seconds / 60)} minutes` : `in ${Math.ceil(seconds)} seconds`;
}

function describeError(result) {
  switch (result.error) {
    case 'network_error':
      return 'The server cannot be reached. Check your connection and try again.';
    case 'rate_limited':
      return `Too many requests. Try again ${retryAfterText(result)}.`;
    case 'not_found':
      return 'This was not found, or you may not use it.';
    case 'forbidden':
      return 'You may not do this.';
    case 'mfa_enrollment_required':
      return 'Your account must enrol in multi-factor authentication before it can chat.';
    case 'message_too_large':
    case 'payload_too_large':
      return 'The message is too long.';
    default:
      return typeof result.data?.message === 'string' ? result.data.message : 'Something went wrong. Try again.';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Views

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = text === '';
}

function showView(name, focusTarget) {
  for (const [key, view] of Object.entries(ui.views)) view.hidden = key !== name;
  const target = focusTarget ?? ui.views[name].querySelector('h2');
  if (target instanceof HTMLElement) target.focus();
}

function showAccount() {
  ui.account.hidden = state.mode !== 'user';
  ui.accountName.textContent = state.mode === 'user' && state.me !== null ? state.me.email : '';
}

function showLogin(message = '') {
  leaveConversation();
  state.mode = 'anonymous';
  state.me = null;
  state.guest = null;
  showAccount();
  ui.loginError.textContent = message;
  ui.totpField.hidden = true;
  ui.loginTotp.value = '';
  ui.loginPassword.value = '';
  showView('login', ui.loginEmail);
}

function showPasswordChange(currentPassword = '') {
  leaveConversation();
  state.mode = 'user';
  showAccount();
  ui.passwordForm.reset();
  // For password managers: the account the new password belongs to (a hidden, read-only field).
  ui.passwordUsername.value = state.me?.email ?? ui.loginEmail.value.trim();
  ui.passwordCurrent.value = currentPassword;
  ui.passwordError.textContent = '';
  showView('password', currentPassword === '' ? ui.passwordCurrent : ui.passwordNew);
}

/** Maps an answer on a cookie-session request that means "not signed in any more" to the right view. */
function handleSessionFailure(result) {
  if (result.status === 401) {
    showLogin('Your session has ended. Please sign in again.');
    return true;
  }
  if (result.error === 'password_change_required') {
    showPasswordChange();
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Sign-in, password change, sign-out

async function afterSignIn() {
  const me = await api('GET', '/api/me');
  if (me.status !== 200) {
    if (!handleSessionFailure(me)) showLogin(describeError(me));
    return;
  }
  state.mode = 'user';
  state.me = me.data;
  showAccount();
  await showHome();
}

async function onLoginSubmit(event) {
  event.preventDefault();
  const email = ui.loginEmail.value.trim();
  const password = ui.loginPassword.value;
  if (email === '' || password === '') {
    ui.loginError.textContent = 'Enter your e-mail and password.';
    (email === '' ? ui.loginEmail : ui.loginPassword).focus();
    return;
  }
  const body = { email, password };
  const totp = ui.loginTotp.value.trim();
  if (!ui.totpField.hidden && totp !== '') body.totp = totp;

  ui.loginSubmit.disabled = true;
  ui.loginError.textContent = '';
  const result = await api('POST', '/auth/login?cookie=1', { body });
  ui.loginSubmit.disabled = false;

  if (result.status === 200) {
    // The response also holds an access/refresh token pair; the page does not keep them: the cookie is the session.
    ui.loginPassword.value = '';
    ui.loginTotp.value = '';
    ui.totpField.hidden = true;
    if (result.data?.passwordChangeRequired === true) {
      state.mode = 'user';
      showPasswordChange(password);
      return;
    }
    await afterSignIn();
    return;
  }
  if (result.error === 'mfa_required') {
    const alreadyAsked = !ui.totpField.hidden && totp !== '';
    ui.totpField.hidden = false;
    ui.loginError.textContent = alreadyAsked ? 'The authentication code is wrong. Try again.' : 'Enter the authentication code from your app.';
    ui.loginTotp.value = '';
    ui.loginTotp.focus();
    return;
  }
  if (result.error === 'account_locked') {
    ui.loginError.textContent = `Too many failed attempts: the account is locked. Try again ${retryAfterText(result)}.`;
  } else if (result.error === 'invalid_credentials' || result.status === 401) {
    ui.loginError.textContent = ui.totpField.hidden ? 'The e-mail or password is wrong.' : 'The e-mail, password or code is wrong.';
  } else if (result.status === 400) {
    ui.loginError.textContent = 'Enter a valid e-mail and password.';
  } else {
    ui.loginError.textContent = describeError(result);
  }
  ui.loginPassword.focus();
}

async function onPasswordSubmit(event) {
  event.preventDefault();
  const currentPassword = ui.passwordCurrent.value;
  const newPassword = ui.passwordNew.value;
  if (currentPassword === '') {
    ui.passwordError.textContent = 'Enter your current password.';
    ui.passwordCurrent.focus();
    return;
  }
  if (newPassword.length < 12) {
    ui.passwordError.textContent = 'The new password must have at least 12 characters.';
    ui.passwordNew.focus();
    return;
  }
  if (newPassword !== ui.passwordConfirm.value) {
    ui.passwordError.textContent = 'The two new passwords differ.';
    ui.passwordConfirm.focus();
    return;
  }
  ui.passwordSubmit.disabled = true;
  const result = await api('POST', '/auth/password', { body: { currentPassword, newPassword } });
  ui.passwordSubmit.disabled = false;
  if (result.status === 204) {
    ui.passwordForm.reset();
    await afterSignIn();
    return;
  }
  if (result.status === 401 && result.error !== 'invalid_credentials') {
    showLogin('Your session has ended. Please sign in again.');
    return;
  }
  ui.passwordError.textContent = result.error === 'invalid_credentials' ? 'The current password is wrong.' : describeError(result);
  (result.error === 'invalid_credentials' ? ui.passwordCurrent : ui.passwordNew).focus();
}

async function onLogout() {
  ui.logout.disabled = true;
  await api('POST', '/auth/logout');
  ui.logout.disabled = false;
  showNotice('');
  history.replaceState(null, '', location.pathname);
  showLogin('You have signed out.');
}

// ---------------------------------------------------------------------------------------------------------------
// Bots

/** The conversation named in the address (`?conversation=<id>`): a signed-in user's reload or a shared link. */
function conversationFromUrl() {
  const id = new URLSearchParams(location.search).get('conversation');
  return id !== null && UUID.test(id) ? id : null;
}

/** Keeps a signed-in user's open conversation in the address, so a reload (or the link) opens it again. */
function rememberConversation(conversationId) {
  if (state.mode !== 'user') return;
  const search = conversationId === null ? '' : `?conversation=${encodeURIComponent(conversationId)}`;
  if (location.search !== search) history.replaceState(null, '', `${location.pathname}${search}`);
}

/** A signed-in user's first view: the conversation in the address, else the bot list (opening `openBotId`). */
async function showHome(openBotId = null) {
  const conversationId = openBotId === null ? conversationFromUrl() : null;
  if (conversationId !== null) {
    await openConversation('Conversation', conversationId);
    return;
  }
  await showBots(openBotId);
}

async function showBots(openBotId = null) {
  leaveConversation();
  const result = await api('GET', '/api/bots');
  if (result.status !== 200) {
    if (!handleSessionFailure(result)) showNotice(describeError(result));
    return;
  }
  const bots = Array.isArray(result.data?.bots) ? result.data.bots : [];
  ui.botList.replaceChildren(
    ...bots.map((bot) => {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.botId = String(bot.id);
      const name = document.createElement('span');
      name.className = 'bot-name';
      name.textContent = String(bot.name);
      const meta = document.createElement('span');
      meta.className = 'bot-meta';
      meta.textContent = bot.public === true ? 'Public bot' : 'Private bot';
      button.append(name, meta);
      button.addEventListener('click', () => void openBot(bot));
      item.append(button);
      return item;
    }),
  );
  ui.botsEmpty.hidden = bots.length > 0;
  const wanted = openBotId === null ? undefined : bots.find((bot) => bot.id === openBotId);
  if (wanted !== undefined) {
    await openBot(wanted);
    return;
  }
  rememberConversation(null);
  showView('bots');
}

async function openBot(bot) {
  showNotice('');
  const created = await api('POST', `/api/bots/${encodeURIComponent(bot.id)}/conversations`);
  if (created.status !== 201 || typeof created.data?.id !== 'string') {
    if (!handleSessionFailure(created)) showNotice(describeError(created));
    return;
  }
  await openConversation(String(bot.name), created.data.id);
}

async function startGuest(botId) {
  state.mode = 'guest';
  showAccount();
  if (!UUID.test(botId)) {
    showLogin('This chat link is not valid.');
    return;
  }
  const result = await api('POST', `/api/bots/${encodeURIComponent(botId)}/guest-token`, { anonymous: true });
  if (result.status !== 200 || typeof result.data?.token !== 'string' || typeof result.data?.conversationId !== 'string') {
    showLogin(result.status === 404 ? 'This chat is not available. Sign in to use your bots.' : describeError(result));
    return;
  }
  state.guest = { token: result.data.token, conversationId: result.data.conversationId };
  await openConversation('Chat', result.data.conversationId);
}

// ---------------------------------------------------------------------------------------------------------------
// Conversation

function requestOptions() {
  return state.mode === 'guest' && state.guest !== null ? { bearer: state.guest.token } : {};
}

async function openConversation(title, conversationId) {
  leaveConversation();
  state.conversationId = conversationId;
  ui.chatTitle.textContent = title;
  ui.back.hidden = state.mode !== 'user';
  // Only signed-in users upload files; a guest token cannot.
  ui.attach.hidden = state.mode !== 'user';
  ui.messages.replaceChildren();
  ui.composeInput.value = '';
  rememberConversation(conversationId);
  setStatus('connecting');
  showView('chat', ui.composeInput);

  const history = await api('GET', `/api/conversations/${encodeURIComponent(conversationId)}/messages`, requestOptions());
  if (state.conversationId !== conversationId) return;
  if (history.status !== 200) {
    if (state.mode === 'user' && handleSessionFailure(history)) return;
    showNotice(describeError(history));
    return;
  }
  for (const message of history.data?.messages ?? []) showMessage({ ...message, conversationId });
  connect();
}

function leaveConversation() {
  if (state.retryTimer !== null) clearTimeout(state.retryTimer);
  state.retryTimer = null;
  if (state.socket !== null) {
    state.socket.removeAllListeners();
    state.socket.disconnect();
  }
  state.socket = null;
  state.joined = false;
  state.conversationId = null;
  state.lastSeenId = null;
  state.shown.clear();
  state.streaming.clear();
  state.pendingSend = null;
  for (const entry of state.attachments) discardAttachment(entry);
  state.attachments = [];
  showAttachments();
  ui.attachError.textContent = '';
  ui.messages.removeAttribute('aria-busy');
  updateComposer();
}

const STATUS_TEXT = {
  connecting: 'Connecting…',
  online: 'Connected',
  reconnecting: 'Connection lost — reconnecting…',
  offline: 'Disconnected',
};

function setStatus(status, text = STATUS_TEXT[status]) {
  ui.status.dataset.state = status;
  ui.status.textContent = text;
}

function updateComposer() {
  const ready = state.socket !== null && state.socket.connected && state.joined;
  ui.send.disabled = !ready;
  ui.composeInput.setAttribute('aria-disabled', String(!ready));
}

/** A fresh handshake token every time: the cookie session's short-lived access token, or the guest token. */
async function handshakeToken() {
  if (state.mode === 'guest') return state.guest?.token ?? '';
  const result = await api('GET', '/auth/socket-token');
  if (result.status === 200 && typeof result.data?.token === 'string') return result.data.token;
  return '';
}

function connect() {
  const socketIo = globalThis.io;
  if (typeof socketIo !== 'function') {
    setStatus('offline', 'Chat client failed to load');
    return;
  }
  const conversationId = state.conversationId;
  const socket = socketIo({
    path: '/socket.io',
    // WebSocket only: no long-polling, so no sticky sessions are needed across several API processes.
    transports: ['websocket'],
    autoConnect: false,
    reconnectionDelay: 1000,
    reconnectionDelayMax: 5000,
    auth: (callback) => {
      handshakeToken().then(
        (token) => callback({ token }),
        () => callback({ token: '' }),
      );
    },
  });
  state.socket = socket;

  socket.on('connect', () => {
    setStatus('connecting', 'Joining…');
    join(socket, conversationId);
  });

  socket.on('disconnect', (reason) => {
    state.joined = false;
    updateComposer();
    if (reason === 'io client disconnect') return;
    if (reason === 'io server disconnect') {
      // The server ended this connection on purpose (shutdown or abuse): try again once, a little later.
      setStatus('reconnecting');
      scheduleReconnect(socket, RETRY_DELAY_MS * 2);
      return;
    }
    setStatus('reconnecting');
  });

  socket.on('connect_error', (error) => {
    state.joined = false;
    updateComposer();
    if (socket.active) {
      // A transport failure: the client retries by itself with backoff.
      setStatus('reconnecting');
      return;
    }
    void onHandshakeRefused(socket, error?.message ?? '');
  });

  socket.on('message:new', (event) => {
    if (event?.conversationId !== state.conversationId) return;
    showMessage(event);
  });
  socket.on('message:chunk', (event) => {
    if (event?.conversationId !== state.conversationId) return;
    showChunk(event);
  });
  socket.on('message:error', (event) => {
    if (event?.conversationId !== state.conversationId) return;
    endStreaming();
    showErrorLine(`The bot could not answer (${String(event.error ?? 'error')}). Try again.`);
  });

  socket.connect();
}

function scheduleReconnect(socket, delay) {
  if (state.retryTimer !== null) clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(() => {
    state.retryTimer = null;
    if (state.socket === socket && !socket.connected) socket.connect();
  }, delay);
}

/** The server's middleware refused the handshake: find out why and act on it. */
async function onHandshakeRefused(socket, reason) {
  if (reason === 'unauthorized' && state.mode === 'guest') {
    setStatus('offline');
    showNotice('This guest chat has expired. Reload the page to start a new one.');
    return;
  }
  if (reason === 'unauthorized') {
    const me = await api('GET', '/api/me');
    if (state.socket !== socket) return;
    if (handleSessionFailure(me)) return;
  } else if (reason === 'password_change_required') {
    showPasswordChange();
    return;
  } else if (reason === 'mfa_enrollment_required') {
    setStatus('offline');
    showNotice(describeError({ error: reason }));
    return;
  }
  setStatus('reconnecting');
  scheduleReconnect(socket, RETRY_DELAY_MS);
}

function join(socket, conversationId) {
  const payload = { conversationId };
  // After a disconnect, the server replays what was stored after the last message this page showed.
  if (state.lastSeenId !== null) payload.after = state.lastSeenId;
  socket.timeout(SEND_TIMEOUT_MS).emit('conversation:join', payload, (error, response) => {
    if (state.socket !== socket || !socket.connected) return;
    if (error || response?.ok !== true) {
      const code = error ? 'timeout' : String(response?.error ?? 'error');
      if (code === 'not_found') {
        setStatus('offline');
        showNotice('This conversation is not available.');
        return;
      }
      setStatus('reconnecting', 'Could not join — retrying…');
      setTimeout(() => {
        if (state.socket === socket && socket.connected) join(socket, conversationId);
      }, RETRY_DELAY_MS);
      return;
    }
    state.joined = true;
    setStatus('online');
    updateComposer();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Messages (always textContent, never HTML)

function messageElement(role) {
  const item = document.createElement('li');
  item.className = `message ${role}`;
  const author = document.createElement('span');
  author.className = 'message-author';
  author.textContent = role === 'user' ? 'You' : role === 'bot' ? 'Bot' : 'Error';
  const text = document.createElement('p');
  text.className = 'message-text';
  item.append(author, text);
  return item;
}

function scrollToEnd() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

/** Shows a stored message once (by messageId); a streamed draft with the same id gets its final text. */
function showMessage({ messageId, role, text, createdAt, attachments, sources }) {
  if (typeof messageId !== 'string') return;
  let item = state.shown.get(messageId);
  if (item === undefined) {
    item = messageElement(role === 'user' ? 'user' : 'bot');
    item.dataset.messageId = messageId;
    ui.messages.append(item);
    state.shown.set(messageId, item);
  }
  const textElement = item.querySelector('.message-text');
  textElement.textContent = String(text ?? '');
  const files = Array.isArray(attachments) ? attachments.filter((attachment) => typeof attachment?.id === 'string' && UUID.test(attachment.id)) : [];
  if (files.length > 0 && item.querySelector('.message-files') === null) item.append(attachmentList(files));
  const cited = Array.isArray(sources) ? sources.filter((source) => typeof source?.title === 'string') : [];
  if (cited.length > 0 && item.querySelector('.message-sources') === null) item.append(sourceList(cited));
  // A message of files alone has no text line.
  textElement.hidden = textElement.textContent === '' && item.querySelector('.message-files') !== null;
  if (typeof createdAt === 'string') item.dataset.createdAt = createdAt;
  item.classList.remove('streaming');
  item.removeAttribute('aria-hidden');
  if (state.streaming.delete(messageId) && state.streaming.size === 0) ui.messages.removeAttribute('aria-busy');
  state.lastSeenId = messageId;
  scrollToEnd();
}

/** The documents a bot's answer came from: title and where in it ("page 2", "section Pricing"). */
function sourceList(sources) {
  const list = document.createElement('ol');
  list.className = 'message-sources';
  list.setAttribute('aria-label', 'Sources');
  for (const source of sources) {
    const entry = document.createElement('li');
    const title = document.createElement('span');
    title.className = 'source-title';
    title.textContent = source.title;
    entry.append(title);
    if (typeof source.position === 'string' && source.position !== '') {
      const position = document.createElement('span');
      position.className = 'source-position';
      position.textContent = ` — ${source.position}`;
      entry.append(position);
    }
    list.append(entry);
  }
  return list;
}

// ---------------------------------------------------------------------------------------------------------------
// Attached files: a download link each (name and size), and a thumbnail for images

function formatSize(bytes) {
  const size = Number(bytes);
  if (!Number.isFinite(size) || size < 0) return '';
  if (size < 1024) return `${size} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = size / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 100 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

function fileContentUrl(fileId) {
  return `/api/files/${encodeURIComponent(fileId)}/content`;
}

function attachmentList(attachments) {
  const list = document.createElement('ul');
  list.className = 'message-files';
  list.setAttribute('aria-label', attachments.length === 1 ? 'Attached file' : 'Attached files');
  list.append(...attachments.map(attachmentItem));
  return list;
}

function attachmentItem(attachment) {
  const name = String(attachment.name ?? 'file');
  const type = String(attachment.type ?? '');
  const item = document.createElement('li');
  item.className = 'message-file';
  item.dataset.fileId = attachment.id;
  if (type.startsWith('image/')) {
    const image = document.createElement('img');
    image.className = 'file-thumbnail';
    image.alt = name;
    image.decoding = 'async';
    item.append(image);
    loadThumbnail(image, attachment.id);
  }
  const link = document.createElement('a');
  link.className = 'file-link';
  link.href = fileContentUrl(attachment.id);
  link.download = name; // the server sends Content-Disposition: attachment anyway
  const label = document.createElement('span');
  label.className = 'file-name';
  label.textContent = name;
  const size = document.createElement('span');
  size.className = 'file-size';
  size.textContent = formatSize(attachment.size);
  link.append(label, ' ', size);
  item.append(link);
  return item;
}

const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Loads an image attachment's thumbnail. A file sent at once may still be pending in the files worker (409): then its
 * status is polled with back-off and the image asked for again once it is stored.
 */
function loadThumbnail(image, fileId) {
  let attempt = 0;
  let retrying = false;
  image.addEventListener('error', () => {
    if (retrying) return;
    retrying = true;
    void (async () => {
      while (attempt < THUMBNAIL_RETRIES) {
        await wait(THUMBNAIL_BACKOFF_MS * 2 ** attempt);
        attempt += 1;
        if (!image.isConnected) return;
        const info = await api('GET', `/api/files/${encodeURIComponent(fileId)}`);
        if (!image.isConnected) return;
        const status = info.status === 200 ? info.data?.status : undefined;
        if (status === 'stored') {
          retrying = false;
          image.src = fileContentUrl(fileId);
          return;
        }
        if (status !== 'pending') {
          thumbnailUnavailable(image, status === 'failed' ? 'This file could not be stored.' : 'No preview available.');
          return;
        }
      }
      thumbnailUnavailable(image, 'No preview yet: the file is still being stored.');
    })();
  });
  image.src = fileContentUrl(fileId);
}

function thumbnailUnavailable(image, text) {
  const note = document.createElement('span');
  note.className = 'file-note';
  note.textContent = text;
  image.replaceWith(note);
}

/** A streamed delta of a bot message: built live, announced once complete (aria-busy while streaming). */
function showChunk({ messageId, delta }) {
  if (typeof messageId !== 'string' || typeof delta !== 'string') return;
  let item = state.shown.get(messageId);
  if (item === undefined) {
    item = messageElement('bot');
    item.dataset.messageId = messageId;
    item.classList.add('streaming');
    ui.messages.append(item);
    state.shown.set(messageId, item);
    state.streaming.add(messageId);
    ui.messages.setAttribute('aria-busy', 'true');
  }
  if (!state.streaming.has(messageId)) return; // the final message is already shown
  item.querySelector('.message-text').append(delta);
  scrollToEnd();
}

function endStreaming() {
  for (const id of state.streaming) state.shown.get(id)?.classList.remove('streaming');
  state.streaming.clear();
  ui.messages.removeAttribute('aria-busy');
}

function showErrorLine(text) {
  const item = messageElement('error');
  item.setAttribute('role', 'alert');
  item.querySelector('.message-text').textContent = text;
  ui.messages.append(item);
  scrollToEnd();
}

// ---------------------------------------------------------------------------------------------------------------
// Files for the next message: uploaded at once (XMLHttpRequest, for its progress events), shown as removable chips
// above the input, sent with the next message

function onAttachChosen() {
  const files = [...(ui.attachInput.files ?? [])];
  ui.attachInput.value = ''; // so the same file can be chosen again
  if (files.length === 0) return;
  ui.attachError.textContent = '';
  const room = Math.max(MAX_ATTACHMENTS - state.attachments.length, 0);
  if (files.length > room) ui.attachError.textContent = `A message may carry at most ${MAX_ATTACHMENTS} files.`;
  for (const file of files.slice(0, room)) startUpload(file);
  showAttachments();
}

function showAttachments() {
  ui.attachList.replaceChildren(...state.attachments.map((entry) => entry.chip));
  ui.attachList.hidden = state.attachments.length === 0;
}

function attachmentChip(entry) {
  const chip = document.createElement('li');
  chip.className = 'pending-file';
  chip.dataset.status = 'uploading';
  const name = document.createElement('span');
  name.className = 'pending-file-name';
  name.textContent = entry.name;
  name.title = entry.name;
  const size = document.createElement('span');
  size.className = 'pending-file-size';
  size.textContent = formatSize(entry.size);
  const progress = document.createElement('progress');
  progress.max = 1;
  progress.value = 0;
  progress.setAttribute('aria-label', `Uploading ${entry.name}`);
  const status = document.createElement('span');
  status.className = 'pending-file-status';
  status.textContent = 'Uploading…';
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'pending-file-remove';
  remove.textContent = '×';
  remove.title = 'Remove';
  remove.setAttribute('aria-label', `Remove ${entry.name}`);
  remove.addEventListener('click', () => onRemoveAttachment(entry));
  chip.append(name, size, progress, status, remove);
  entry.progress = progress;
  entry.statusText = status;
  return chip;
}

function startUpload(file) {
  const entry = { file, name: file.name === '' ? 'file' : file.name, size: file.size, type: file.type, status: 'uploading', id: null, xhr: null, sending: false };
  entry.chip = attachmentChip(entry);
  state.attachments.push(entry);

  const xhr = new XMLHttpRequest();
  entry.xhr = xhr;
  xhr.open('POST', '/api/files');
  // The cookie session, like every other state-changing request of the page: the CSRF header goes with it.
  xhr.setRequestHeader('accept', 'application/json');
  const csrf = readCookie(CSRF_COOKIE);
  if (csrf !== null) xhr.setRequestHeader('x-csrf-token', csrf);
  xhr.upload.addEventListener('progress', (event) => {
    if (!event.lengthComputable || event.total <= 0) return;
    const fraction = Math.min(event.loaded / event.total, 1);
    entry.progress.value = fraction;
    entry.statusText.textContent = `${Math.floor(fraction * 100)} %`;
  });
  xhr.addEventListener('load', () => finishUpload(entry, xhrResult(xhr)));
  xhr.addEventListener('error', () => finishUpload(entry, { status: 0, data: null, headers: new Headers(), error: 'network_error' }));
  const body = new FormData();
  body.append('file', file, entry.name);
  xhr.send(body);
}

/** The same shape as api()'s answer. */
function xhrResult(xhr) {
  let data;
  try {
    data = xhr.responseText === '' ? null : JSON.parse(xhr.responseText);
  } catch {
    data = null;
  }
  const headers = new Headers();
  const retryAfter = xhr.getResponseHeader('retry-after');
  if (retryAfter !== null) headers.set('retry-after', retryAfter);
  const ok = xhr.status >= 200 && xhr.status < 300;
  const error = ok ? undefined : typeof data?.error === 'string' ? data.error : `http_${xhr.status}`;
  return { status: xhr.status, data, headers, error };
}

function finishUpload(entry, result) {
  entry.xhr = null;
  if (!state.attachments.includes(entry)) return; // removed meanwhile
  if (result.status === 202 && typeof result.data?.id === 'string' && UUID.test(result.data.id)) {
    // Still being encrypted into storage ("pending"): it may be sent already; its thumbnail waits for it.
    entry.id = result.data.id;
    entry.status = 'ready';
    entry.chip.dataset.status = 'ready';
    entry.progress.hidden = true;
    entry.statusText.textContent = 'Ready to send';
    return;
  }
  state.attachments = state.attachments.filter((other) => other !== entry);
  showAttachments();
  if (handleSessionFailure(result)) return;
  ui.attachError.textContent = describeUploadError(result, entry.name);
}

function describeUploadError(result, name) {
  switch (result.error) {
    case 'payload_too_large': {
      const limit = /at most (\d+) bytes/.exec(String(result.data?.message ?? ''));
      return `“${name}” is too large to send${limit === null ? '' : `: a file may have at most ${formatSize(limit[1])}`}.`;
    }
    case 'unsupported_file_type':
      return `“${name}” was not sent: files of this type are not accepted.`;
    case 'network_error':
      return `“${name}” could not be uploaded: the connection was interrupted. The file may be too large, or the server cannot be reached.`;
    case 'forbidden':
      return 'You may not send files.';
    default:
      return `“${name}” could not be uploaded. ${describeError(result)}`;
  }
}

function onRemoveAttachment(entry) {
  if (entry.sending) return;
  state.attachments = state.attachments.filter((other) => other !== entry);
  discardAttachment(entry);
  showAttachments();
  ui.attachError.textContent = '';
  ui.composeInput.focus();
}

/** Stops an upload, or deletes an uploaded file that was never sent: nothing else refers to it. */
function discardAttachment(entry) {
  if (entry.xhr !== null) {
    entry.xhr.abort();
    entry.xhr = null;
  }
  if (entry.id !== null) void api('DELETE', `/api/files/${encodeURIComponent(entry.id)}`);
}

function onComposeSubmit(event) {
  event.preventDefault();
  const text = ui.composeInput.value.trim();
  const socket = state.socket;
  const conversationId = state.conversationId;
  if (state.attachments.some((entry) => entry.status === 'uploading')) {
    ui.attachError.textContent = 'Wait until the files have finished uploading, then press Send.';
    return;
  }
  const files = state.attachments.filter((entry) => entry.status === 'ready');
  if (text === '' && files.length === 0) {
    ui.composeInput.focus();
    return;
  }
  if (socket === null || !socket.connected || !state.joined || conversationId === null) {
    showErrorLine('Not connected. Your message was not sent; try again when the status says Connected.');
    return;
  }
  const attachmentIds = files.map((entry) => entry.id);
  // The same text and files retried after an unconfirmed send keep their id, so the server never processes them twice.
  const key = JSON.stringify([text, attachmentIds]);
  const clientMessageId = state.pendingSend?.key === key ? state.pendingSend.clientMessageId : crypto.randomUUID();
  state.pendingSend = { key, clientMessageId };
  const payload = { conversationId, text, clientMessageId };
  if (attachmentIds.length > 0) payload.attachments = attachmentIds;
  for (const entry of files) entry.sending = true;
  ui.send.disabled = true;
  socket.timeout(SEND_TIMEOUT_MS).emit('message:send', payload, (error, response) => {
    if (state.socket !== socket) return;
    updateComposer();
    for (const entry of files) entry.sending = false;
    if (error || response?.ok !== true) {
      const code = error ? 'timeout' : String(response?.error ?? 'error');
      if (code === 'message_too_large') showErrorLine(describeError({ error: code }));
      else if (code === 'not_found') showErrorLine('Your message could not be sent: this conversation, or an attached file, is not available to you.');
      else showErrorLine(`Your message could not be sent (${code}). Press Send to try again.`);
      return;
    }
    state.pendingSend = null;
    if (ui.composeInput.value.trim() === text) ui.composeInput.value = '';
    state.attachments = state.attachments.filter((entry) => !files.includes(entry));
    showAttachments();
    ui.attachError.textContent = '';
    // Usually message:new has shown it already; if not, show it now (once, by messageId).
    if (typeof response.messageId === 'string' && !state.shown.has(response.messageId)) {
      const attachments = files.map((entry) => ({ id: entry.id, name: entry.name, size: entry.size, type: entry.type }));
      showMessage({ messageId: response.messageId, role: 'user', text, attachments });
    }
    ui.composeInput.focus();
  });
}

function onComposeKeydown(event) {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    if (!ui.send.disabled) ui.composeForm.requestSubmit();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Start

async function start() {
  ui.loginForm.addEventListener('submit', (event) => void onLoginSubmit(event));
  ui.passwordForm.addEventListener('submit', (event) => void onPasswordSubmit(event));
  ui.logout.addEventListener('click', () => void onLogout());
  ui.back.addEventListener('click', () => void showBots());
  ui.composeForm.addEventListener('submit', onComposeSubmit);
  ui.composeInput.addEventListener('keydown', onComposeKeydown);
  ui.attach.addEventListener('click', () => ui.attachInput.click());
  ui.attachInput.addEventListener('change', onAttachChosen);

  const wantedBot = new URLSearchParams(location.search).get('bot');
  const me = await api('GET', '/api/me');
  if (me.status === 200) {
    state.mode = 'user';
    state.me = me.data;
    showAccount();
    await showHome(wantedBot);
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
