// @ts-check
// Files of a message: a download link each (name and size), and a thumbnail for images. Files are shown only through
// GET /api/files/:id/content (same origin, the session cookie); their names are text.

import { el, wait } from '../dom.js';
import { formatSize } from '../format.js';
import { api } from '../http.js';

/** @typedef {import('../../types/api').Attachment} Attachment */

/** A thumbnail whose file is still being stored (409) is tried again this often, waiting 0.5 s, 1 s, 2 s, … */
const THUMBNAIL_RETRIES = 6;
const THUMBNAIL_BACKOFF_MS = 500;

/** @param {string} fileId */
export function fileContentUrl(fileId) {
  return `/api/files/${encodeURIComponent(fileId)}/content`;
}

/** @param {Attachment[]} attachments */
export function attachmentList(attachments) {
  const list = el('ul', { className: 'message-files', attrs: { 'aria-label': attachments.length === 1 ? 'Attached file' : 'Attached files' } });
  list.append(...attachments.map(attachmentItem));
  return list;
}

/** @param {Attachment} attachment */
function attachmentItem(attachment) {
  const name = String(attachment.name ?? 'file');
  const type = String(attachment.type ?? '');
  const item = el('li', { className: 'message-file', data: { fileId: attachment.id } });
  if (type.startsWith('image/')) {
    const image = el('img', { className: 'file-thumbnail' });
    image.alt = name;
    image.decoding = 'async';
    item.append(image);
    loadThumbnail(image, attachment.id);
  }
  const link = el('a', { className: 'file-link' }, el('span', { className: 'file-name', text: name }), ' ', el('span', { className: 'file-size', text: formatSize(attachment.size) }));
  link.href = fileContentUrl(attachment.id);
  link.download = name; // the server sends Content-Disposition: attachment anyway
  item.append(link);
  return item;
}

/**
 * Loads an image attachment's thumbnail. A file sent at once may still be pending in the files worker (409): then its
 * status is polled with back-off and the image asked for again once it is stored.
 * @param {HTMLImageElement} image
 * @param {string} fileId
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
        /** @type {import('../http.js').ApiResult<{ status?: string }>} */
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

/** @param {HTMLImageElement} image @param {string} text */
function thumbnailUnavailable(image, text) {
  image.replaceWith(el('span', { className: 'file-note', text }));
}
