// @ts-check
// Files for the next message: uploaded at once (XMLHttpRequest, for its progress events), shown as removable chips
// above the input, sent with the next message. Signed-in users only: a guest token cannot upload.

import { el } from '../dom.js';
import { formatSize, isUuid } from '../format.js';
import { api, csrfToken, describeError, errorOf } from '../http.js';

/** Most files one message may carry (the server's limit). */
const MAX_ATTACHMENTS = 10;

/**
 * @typedef {object} UploadElements
 * @property {HTMLButtonElement} attach the "Attach…" button
 * @property {HTMLInputElement} input the hidden file input
 * @property {HTMLElement} list the chips
 * @property {HTMLElement} error
 */

/**
 * @typedef {object} PendingFile
 * @property {string} name
 * @property {number} size
 * @property {string} type
 * @property {'uploading' | 'ready'} status
 * @property {string | null} id the stored file's id once uploaded
 * @property {XMLHttpRequest | null} xhr
 * @property {boolean} sending
 * @property {HTMLLIElement} chip
 * @property {HTMLProgressElement} progress
 * @property {HTMLElement} statusText
 */

/** @typedef {import('../http.js').ApiResult<{ id?: unknown }>} UploadResult */

export class PendingUploads {
  /**
   * @param {UploadElements} elements
   * @param {{ onSessionFailure: (result: UploadResult) => boolean, focusInput: () => void }} hooks
   */
  constructor(elements, hooks) {
    this.ui = elements;
    this.hooks = hooks;
    /** @type {PendingFile[]} */
    this.files = [];
    elements.attach.addEventListener('click', () => elements.input.click());
    elements.input.addEventListener('change', () => this.onChosen());
  }

  /** @param {boolean} enabled */
  setEnabled(enabled) {
    this.ui.attach.hidden = !enabled;
  }

  get uploading() {
    return this.files.some((entry) => entry.status === 'uploading');
  }

  get ready() {
    return this.files.filter((entry) => entry.status === 'ready');
  }

  /** @param {string} text */
  setError(text) {
    this.ui.error.textContent = text;
  }

  /** Forgets the files that went out with a message. @param {PendingFile[]} sent */
  sent(sent) {
    this.files = this.files.filter((entry) => !sent.includes(entry));
    this.render();
    this.setError('');
  }

  /** Drops every pending file (leaving the conversation): uploads stop, uploaded but unsent files are deleted. */
  discardAll() {
    for (const entry of this.files) discard(entry);
    this.files = [];
    this.render();
    this.setError('');
  }

  onChosen() {
    const files = [...(this.ui.input.files ?? [])];
    this.ui.input.value = ''; // so the same file can be chosen again
    if (files.length === 0) return;
    this.setError('');
    const room = Math.max(MAX_ATTACHMENTS - this.files.length, 0);
    if (files.length > room) this.setError(`A message may carry at most ${MAX_ATTACHMENTS} files.`);
    for (const file of files.slice(0, room)) this.start(file);
    this.render();
  }

  render() {
    this.ui.list.replaceChildren(...this.files.map((entry) => entry.chip));
    this.ui.list.hidden = this.files.length === 0;
  }

  /** @param {File} file */
  start(file) {
    const name = file.name === '' ? 'file' : file.name;
    const progress = el('progress', { attrs: { 'aria-label': `Uploading ${name}` } });
    progress.max = 1;
    progress.value = 0;
    const statusText = el('span', { className: 'pending-file-status', text: 'Uploading…' });
    const remove = el('button', { className: 'pending-file-remove', text: '×', attrs: { type: 'button', title: 'Remove', 'aria-label': `Remove ${name}` } });
    const nameLabel = el('span', { className: 'pending-file-name', text: name, attrs: { title: name } });
    const chip = el('li', { className: 'pending-file', data: { status: 'uploading' } }, nameLabel, el('span', { className: 'pending-file-size', text: formatSize(file.size) }), progress, statusText, remove);
    /** @type {PendingFile} */
    const entry = { name, size: file.size, type: file.type, status: 'uploading', id: null, xhr: null, sending: false, chip, progress, statusText };
    remove.addEventListener('click', () => this.remove(entry));
    this.files.push(entry);

    const xhr = new XMLHttpRequest();
    entry.xhr = xhr;
    xhr.open('POST', '/api/files');
    // The cookie session, like every other state-changing request of the page: the CSRF header goes with it.
    xhr.setRequestHeader('accept', 'application/json');
    const csrf = csrfToken();
    if (csrf !== null) xhr.setRequestHeader('x-csrf-token', csrf);
    xhr.upload.addEventListener('progress', (event) => {
      if (!event.lengthComputable || event.total <= 0) return;
      const fraction = Math.min(event.loaded / event.total, 1);
      entry.progress.value = fraction;
      entry.statusText.textContent = `${Math.floor(fraction * 100)} %`;
    });
    xhr.addEventListener('load', () => this.finish(entry, xhrResult(xhr)));
    xhr.addEventListener('error', () => this.finish(entry, { status: 0, data: null, headers: new Headers(), ...errorOf(0, null) }));
    const body = new FormData();
    body.append('file', file, name);
    xhr.send(body);
  }

  /** @param {PendingFile} entry @param {UploadResult} result */
  finish(entry, result) {
    entry.xhr = null;
    if (!this.files.includes(entry)) return; // removed meanwhile
    const id = result.data?.id;
    if (result.status === 202 && isUuid(id)) {
      // Still being encrypted into storage ("pending"): it may be sent already; its thumbnail waits for it.
      entry.id = id;
      entry.status = 'ready';
      entry.chip.dataset.status = 'ready';
      entry.progress.hidden = true;
      entry.statusText.textContent = 'Ready to send';
      return;
    }
    this.files = this.files.filter((other) => other !== entry);
    this.render();
    if (this.hooks.onSessionFailure(result)) return;
    this.setError(describeUploadError(result, entry.name));
  }

  /** @param {PendingFile} entry */
  remove(entry) {
    if (entry.sending) return;
    this.files = this.files.filter((other) => other !== entry);
    discard(entry);
    this.render();
    this.setError('');
    this.hooks.focusInput();
  }
}

/** Stops an upload, or deletes an uploaded file that was never sent: nothing else refers to it. @param {PendingFile} entry */
function discard(entry) {
  if (entry.xhr !== null) {
    entry.xhr.abort();
    entry.xhr = null;
  }
  if (entry.id !== null) void api('DELETE', `/api/files/${encodeURIComponent(entry.id)}`);
}

/** The same shape as api()'s answer. @param {XMLHttpRequest} xhr @returns {UploadResult} */
function xhrResult(xhr) {
  /** @type {unknown} */
  let data;
  try {
    data = xhr.responseText === '' ? null : JSON.parse(xhr.responseText);
  } catch {
    data = null;
  }
  const headers = new Headers();
  const retryAfter = xhr.getResponseHeader('retry-after');
  if (retryAfter !== null) headers.set('retry-after', retryAfter);
  return { status: xhr.status, data: /** @type {{ id?: unknown } | null} */ (data), headers, ...errorOf(xhr.status, data) };
}

/** @param {UploadResult} result @param {string} name */
function describeUploadError(result, name) {
  switch (result.error) {
    case 'payload_too_large': {
      const limit = /at most (\d+) bytes/.exec(String(result.message ?? ''));
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
