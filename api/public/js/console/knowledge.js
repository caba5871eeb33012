// @ts-check
// A bot's knowledge documents (feature vectordb): their indexing status, add (title and text), delete. The panel
// stays hidden when the server answers 409 feature_disabled.

import { handleSessionFailure } from '../auth.js';
import { byId, el } from '../dom.js';
import { formatTime } from '../format.js';
import { api, describeError } from '../http.js';
import { announce } from '../shell.js';
import { botPath } from './bots.js';
import { cell, clearErrors, confirmAction, showFormError } from './forms.js';

/** @typedef {import('../../types/api').Bot} Bot */
/** @typedef {import('../../types/api').KnowledgeDocument} KnowledgeDocument */

/** While a document is being indexed, its status is asked for this often. */
const POLL_MS = 2000;

const STATUS_TEXT = { pending: 'Being indexed…', indexed: 'Indexed', failed: 'Failed' };

export class KnowledgePanel {
  constructor() {
    this.ui = {
      panel: byId('bot-knowledge', HTMLElement),
      status: byId('knowledge-status', HTMLElement),
      rows: byId('knowledge-rows', HTMLElement),
      table: byId('knowledge-table', HTMLTableElement),
      empty: byId('knowledge-empty', HTMLElement),
      form: byId('knowledge-form', HTMLFormElement),
      title: byId('knowledge-title', HTMLInputElement),
      text: byId('knowledge-text', HTMLTextAreaElement),
      error: byId('knowledge-error', HTMLElement),
      add: byId('knowledge-add', HTMLButtonElement),
    };
    /** @type {Bot | null} */
    this.bot = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.timer = null;
    this.ui.form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.addDocument();
    });
  }

  stop() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.bot = null;
  }

  /** @param {Bot} bot */
  async show(bot) {
    this.stop();
    this.bot = bot;
    this.ui.panel.hidden = true;
    this.ui.panel.dataset.state = 'loading';
    clearErrors(this.ui.form, this.ui.error);
    this.ui.form.reset();
    this.ui.status.textContent = '';
    await this.load();
  }

  async load() {
    const bot = this.bot;
    if (bot === null) return;
    /** @type {import('../http.js').ApiResult<{ documents?: KnowledgeDocument[] }>} */
    const result = await api('GET', `${botPath(bot.id)}/knowledge`);
    if (this.bot !== bot) return;
    if (result.error === 'feature_disabled') {
      this.ui.panel.hidden = true;
      this.ui.panel.dataset.state = 'feature-disabled';
      return;
    }
    this.ui.panel.hidden = false;
    this.ui.panel.dataset.state = 'shown';
    if (result.status !== 200) {
      if (!handleSessionFailure(result)) this.ui.status.textContent = describeError(result);
      return;
    }
    const documents = result.data?.documents ?? [];
    this.ui.rows.replaceChildren(...documents.map((document) => this.row(document)));
    this.ui.table.hidden = documents.length === 0;
    this.ui.empty.hidden = documents.length > 0;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = documents.some((document) => document.status === 'pending') ? setTimeout(() => void this.load(), POLL_MS) : null;
  }

  /** @param {KnowledgeDocument} document */
  row(document) {
    const status = STATUS_TEXT[document.status] ?? String(document.status);
    const remove = el('button', { className: 'secondary small', text: 'Delete', attrs: { type: 'button', 'aria-label': `Delete ${document.title}` } });
    remove.addEventListener('click', () => void this.deleteDocument(document));
    return el(
      'tr',
      { data: { documentId: document.id, status: String(document.status) } },
      el('th', { text: document.title, attrs: { scope: 'row' } }),
      cell(document.status === 'failed' && typeof document.reason === 'string' ? `${status}: ${document.reason}` : status),
      cell(typeof document.chunks === 'number' ? String(document.chunks) : '—'),
      cell(formatTime(document.createdAt)),
      el('td', { className: 'row-actions' }, remove),
    );
  }

  async addDocument() {
    const bot = this.bot;
    if (bot === null) return;
    clearErrors(this.ui.form, this.ui.error);
    this.ui.add.disabled = true;
    const result = await api('POST', `${botPath(bot.id)}/knowledge`, { body: { title: this.ui.title.value.trim(), text: this.ui.text.value } });
    this.ui.add.disabled = false;
    if (this.bot !== bot) return;
    if (result.status === 202) {
      announce('Document added; it is being indexed.');
      this.ui.form.reset();
      this.ui.title.focus();
      await this.load();
      return;
    }
    if (handleSessionFailure(result)) return;
    showFormError(this.ui.form, this.ui.error, result, 'The document was not added:');
  }

  /** @param {KnowledgeDocument} document */
  async deleteDocument(document) {
    const bot = this.bot;
    if (bot === null) return;
    const confirmed = await confirmAction({ title: `Delete “${document.title}”?`, text: 'The bot no longer answers from it.', confirm: 'Delete document' });
    if (!confirmed || this.bot !== bot) return;
    const result = await api('DELETE', `${botPath(bot.id)}/knowledge/${encodeURIComponent(document.id)}`);
    if (result.status === 204) {
      announce(`“${document.title}” deleted.`);
      this.ui.title.focus();
      await this.load();
      return;
    }
    if (!handleSessionFailure(result)) this.ui.status.textContent = `“${document.title}” was not deleted: ${describeError(result)}`;
  }
}
