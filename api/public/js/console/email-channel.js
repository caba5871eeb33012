// @ts-check
// A bot's e-mail channel: IMAP and SMTP settings and the bot's address. Saving runs the server's connection test;
// its failure (the reason, such as auth_failed or unreachable) is shown next to the form and nothing is stored.

import { handleSessionFailure } from '../auth.js';
import { byId } from '../dom.js';
import { api } from '../http.js';
import { botPath } from './bots.js';
import { clearErrors, confirmAction, showFormError } from './forms.js';

/** @typedef {import('../../types/api').Bot} Bot */
/** @typedef {import('../../types/api').EmailEndpoint} EmailEndpoint */

/** @param {'imap' | 'smtp'} side */
function endpointFields(side) {
  return {
    host: byId(`email-${side}-host`, HTMLInputElement),
    port: byId(`email-${side}-port`, HTMLInputElement),
    secure: byId(`email-${side}-secure`, HTMLInputElement),
    user: byId(`email-${side}-user`, HTMLInputElement),
    pass: byId(`email-${side}-pass`, HTMLInputElement),
  };
}

/** @param {ReturnType<typeof endpointFields>} fields @returns {EmailEndpoint} */
function endpoint(fields) {
  return { host: fields.host.value.trim(), port: Number(fields.port.value), secure: fields.secure.checked, user: fields.user.value, pass: fields.pass.value };
}

export class EmailChannelForm {
  constructor() {
    this.ui = {
      form: byId('email-form', HTMLFormElement),
      state: byId('email-state', HTMLElement),
      imap: endpointFields('imap'),
      smtp: endpointFields('smtp'),
      address: byId('email-address', HTMLInputElement),
      error: byId('email-error', HTMLElement),
      save: byId('email-save', HTMLButtonElement),
      remove: byId('email-remove', HTMLButtonElement),
    };
    /** @type {Bot | null} */
    this.bot = null;
    this.ui.form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.save();
    });
    this.ui.remove.addEventListener('click', () => void this.removeChannel());
  }

  /** @param {Bot} bot */
  show(bot) {
    this.bot = bot;
    clearErrors(this.ui.form, this.ui.error);
    this.ui.imap.pass.value = '';
    this.ui.smtp.pass.value = '';
    const configured = bot.email !== null && bot.email !== undefined;
    this.ui.state.textContent = configured
      ? 'An e-mail channel is configured (its settings are stored encrypted and not shown). Enter new settings to replace them.'
      : 'No e-mail channel: the bot answers on the web only.';
    this.ui.remove.hidden = !configured;
  }

  async save() {
    const bot = this.bot;
    if (bot === null) return;
    clearErrors(this.ui.form, this.ui.error);
    const email = { imap: endpoint(this.ui.imap), smtp: endpoint(this.ui.smtp), address: this.ui.address.value.trim() };
    this.ui.save.disabled = true;
    this.ui.state.textContent = 'Testing the connection to both servers…';
    /** @type {import('../http.js').ApiResult<Bot>} */
    const result = await api('PATCH', botPath(bot.id), { body: { email } });
    this.ui.save.disabled = false;
    if (this.bot !== bot) return;
    if (result.status === 200 && result.data !== null) {
      this.show(result.data);
      this.ui.state.textContent = 'Saved: both servers accepted the login. New mail to the address is answered from now on.';
      return;
    }
    this.show(bot);
    if (handleSessionFailure(result)) return;
    showFormError(this.ui.form, this.ui.error, result, 'The channel was not saved:');
  }

  async removeChannel() {
    const bot = this.bot;
    if (bot === null) return;
    const confirmed = await confirmAction({ title: 'Remove the e-mail channel?', text: 'The bot stops reading and answering its mailbox. Its stored settings are deleted.', confirm: 'Remove channel' });
    if (!confirmed) return;
    /** @type {import('../http.js').ApiResult<Bot>} */
    const result = await api('PATCH', botPath(bot.id), { body: { email: null } });
    if (result.status === 200 && result.data !== null) {
      this.show(result.data);
      this.ui.state.textContent = 'The e-mail channel was removed.';
      this.ui.save.focus();
      return;
    }
    if (handleSessionFailure(result)) return;
    showFormError(this.ui.form, this.ui.error, result, 'The channel was not removed:');
  }
}
