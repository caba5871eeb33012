// @ts-check
// "Try it": what the bot's saved rules answer to a message, without a conversation.

import { handleSessionFailure } from '../auth.js';
import { byId, el } from '../dom.js';
import { botPath } from './bots.js';
import { api } from '../http.js';
import { clearErrors, showFormError } from './forms.js';

/** @typedef {import('../../types/api').Bot} Bot */
/** @typedef {import('../../types/api').TryResult} TryResult */

export class TryItBox {
  constructor() {
    this.ui = {
      form: byId('try-form', HTMLFormElement),
      input: byId('try-input', HTMLInputElement),
      submit: byId('try-submit', HTMLButtonElement),
      error: byId('try-error', HTMLElement),
      result: byId('try-result', HTMLElement),
    };
    /** @type {Bot | null} */
    this.bot = null;
    this.ui.form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.run();
    });
  }

  /** @param {Bot} bot */
  show(bot) {
    this.bot = bot;
    this.ui.input.value = '';
    this.ui.result.replaceChildren();
    clearErrors(this.ui.form, this.ui.error);
  }

  async run() {
    const bot = this.bot;
    const text = this.ui.input.value.trim();
    if (bot === null) return;
    clearErrors(this.ui.form, this.ui.error);
    if (text === '') {
      showFormError(this.ui.form, this.ui.error, { status: 400, error: 'invalid_request', message: 'Type a message to try.', field: 'text' });
      return;
    }
    this.ui.submit.disabled = true;
    /** @type {import('../http.js').ApiResult<TryResult>} */
    const result = await api('POST', `${botPath(bot.id)}/try`, { body: { text } });
    this.ui.submit.disabled = false;
    if (this.bot !== bot) return;
    if (result.status === 200 && result.data !== null) {
      this.ui.result.replaceChildren(...describe(result.data));
      return;
    }
    this.ui.result.replaceChildren();
    if (handleSessionFailure(result)) return;
    showFormError(this.ui.form, this.ui.error, result);
  }
}

/** @param {TryResult} outcome @returns {HTMLElement[]} */
function describe(outcome) {
  if (outcome.reply === null) return [el('p', { className: 'try-none', text: 'No rule matches: the language model (or the fallback reply) would answer.' })];
  const which = typeof outcome.rule === 'number' ? `Rule ${outcome.rule + 1} answers:` : 'A rule answers:';
  const parts = [el('p', { className: 'try-rule', text: which }), el('blockquote', { className: 'try-reply', text: outcome.reply })];
  if (outcome.handoff) parts.push(el('p', { className: 'try-handoff', text: 'Then the conversation waits for a person.' }));
  return parts;
}
