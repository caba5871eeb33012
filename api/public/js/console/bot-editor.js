// @ts-check
// One bot in the console: its settings form (name, greeting, public, widget origins, rules, language model), then,
// for a saved bot, its chat link and widget code, the "try it" box, its e-mail channel, its knowledge and delete.

import { handleSessionFailure } from '../auth.js';
import { byId } from '../dom.js';
import { api, describeError } from '../http.js';
import { announce, onLeave, showView } from '../shell.js';
import { botPath, deleteBot } from './bots.js';
import { EmailChannelForm } from './email-channel.js';
import { clearErrors, copyValue, showFormError } from './forms.js';
import { KnowledgePanel } from './knowledge.js';
import { RulesEditor } from './rules.js';
import { TryItBox } from './try-it.js';

/** @typedef {import('../../types/api').Bot} Bot */
/** @typedef {import('../../types/api').LlmSettings} LlmSettings */

const ui = {
  title: byId('bot-edit-title', HTMLElement),
  form: byId('bot-form', HTMLFormElement),
  name: byId('bot-name', HTMLInputElement),
  greeting: byId('bot-greeting', HTMLTextAreaElement),
  public: byId('bot-public', HTMLInputElement),
  origins: byId('bot-origins', HTMLTextAreaElement),
  llmEnabled: byId('bot-llm-enabled', HTMLInputElement),
  llmFields: byId('bot-llm-fields', HTMLElement),
  llmModel: byId('bot-llm-model', HTMLInputElement),
  llmPrompt: byId('bot-llm-prompt', HTMLTextAreaElement),
  llmTemperature: byId('bot-llm-temperature', HTMLInputElement),
  error: byId('bot-form-error', HTMLElement),
  status: byId('bot-form-status', HTMLElement),
  save: byId('bot-save', HTMLButtonElement),
  extras: byId('bot-extras', HTMLElement),
  sharePrivate: byId('bot-share-private', HTMLElement),
  sharePublic: byId('bot-share-public', HTMLElement),
  guestLink: byId('bot-guest-link', HTMLInputElement),
  widgetCode: byId('bot-widget-code', HTMLTextAreaElement),
  widgetCopy: byId('bot-widget-copy', HTMLButtonElement),
  widgetCopyStatus: byId('bot-widget-copy-status', HTMLElement),
  delete: byId('bot-delete', HTMLButtonElement),
  deleteError: byId('bot-delete-error', HTMLElement),
};

const rules = new RulesEditor(byId('rule-list', HTMLElement), byId('rule-add', HTMLButtonElement), byId('rules-empty', HTMLElement));
const emailForm = new EmailChannelForm();
const knowledge = new KnowledgePanel();
const tryIt = new TryItBox();

/** The bot being edited; null for a new one. @type {Bot | null} */
let current = null;

onLeave('bot-edit', () => {
  current = null;
  knowledge.stop();
});

ui.llmEnabled.addEventListener('change', () => {
  ui.llmFields.hidden = !ui.llmEnabled.checked;
});

/** @param {Bot | null} bot */
function fill(bot) {
  clearErrors(ui.form, ui.error);
  ui.status.textContent = '';
  ui.name.value = bot?.name ?? '';
  ui.greeting.value = bot?.greeting ?? '';
  ui.public.checked = bot?.public === true;
  ui.origins.value = (bot?.allowedOrigins ?? []).join('\n');
  rules.set(bot?.rules ?? []);
  const llm = bot?.llm ?? null;
  ui.llmEnabled.checked = llm !== null;
  ui.llmFields.hidden = llm === null;
  ui.llmModel.value = llm?.model ?? '';
  ui.llmPrompt.value = llm?.systemPrompt ?? '';
  ui.llmTemperature.value = llm?.temperature === undefined ? '' : String(llm.temperature);
  ui.title.textContent = bot === null ? 'New bot' : `Bot “${bot.name}”`;
  ui.save.textContent = bot === null ? 'Create bot' : 'Save';
}

/** @param {Bot} bot */
function showShare(bot) {
  ui.sharePrivate.hidden = bot.public;
  ui.sharePublic.hidden = !bot.public;
  ui.guestLink.value = `${location.origin}/?bot=${encodeURIComponent(bot.id)}`;
  ui.widgetCode.value = `<script src="${location.origin}/widget.js" data-bot="${bot.id}" async></script>`;
  ui.widgetCopyStatus.textContent = '';
}

/** @returns {LlmSettings | null} */
function llmSettings() {
  if (!ui.llmEnabled.checked) return null;
  /** @type {LlmSettings} */
  const llm = {};
  const model = ui.llmModel.value.trim();
  if (model !== '') llm.model = model;
  if (ui.llmPrompt.value.trim() !== '') llm.systemPrompt = ui.llmPrompt.value;
  const temperature = ui.llmTemperature.value.trim();
  // A malformed number is sent as it is read (NaN is not JSON: null), so the server names the field.
  if (temperature !== '') llm.temperature = Number.isFinite(ui.llmTemperature.valueAsNumber) ? ui.llmTemperature.valueAsNumber : Number(temperature);
  return llm;
}

/** The form as the API takes it. */
function formBody() {
  const greeting = ui.greeting.value.trim();
  const origins = ui.origins.value
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  /** @type {Record<string, unknown>} */
  const body = { name: ui.name.value.trim(), public: ui.public.checked, greeting: greeting === '' ? null : greeting, rules: rules.get(), llm: llmSettings() };
  // Sent when there is something to say: a bot read from a server that knows the field, or origins typed in.
  if (origins.length > 0 || Array.isArray(current?.allowedOrigins)) body.allowedOrigins = origins;
  return body;
}

/** @param {SubmitEvent} event */
async function onSubmit(event) {
  event.preventDefault();
  clearErrors(ui.form, ui.error);
  ui.status.textContent = '';
  if (ui.name.value.trim() === '') {
    showFormError(ui.form, ui.error, { status: 400, error: 'invalid_request', message: 'Give the bot a name.', field: 'name' });
    return;
  }
  const editing = current;
  ui.save.disabled = true;
  ui.status.textContent = 'Saving…';
  /** @type {import('../http.js').ApiResult<Bot>} */
  const result = editing === null ? await api('POST', '/api/bots', { body: formBody() }) : await api('PATCH', botPath(editing.id), { body: formBody() });
  ui.save.disabled = false;
  ui.status.textContent = '';
  if ((result.status === 201 || result.status === 200) && result.data !== null) {
    if (editing === null) {
      announce(`Bot “${result.data.name}” created.`);
      location.hash = `#/bots/${encodeURIComponent(result.data.id)}`;
      return;
    }
    current = result.data;
    fill(result.data);
    showShare(result.data);
    emailForm.show(result.data);
    ui.status.textContent = 'Saved.';
    return;
  }
  if (handleSessionFailure(result)) return;
  showFormError(ui.form, ui.error, result, editing === null ? 'The bot was not created:' : 'The changes were not saved:');
}

ui.form.addEventListener('submit', (event) => void onSubmit(event));

ui.widgetCopy.addEventListener('click', () => {
  void copyValue(ui.widgetCode).then((copied) => {
    ui.widgetCopyStatus.textContent = copied ? 'Copied.' : 'Selected: press Ctrl+C to copy.';
  });
});

ui.delete.addEventListener('click', () => {
  const bot = current;
  if (bot === null) return;
  ui.deleteError.textContent = '';
  void deleteBot(bot).then((outcome) => {
    if (outcome.error !== undefined) ui.deleteError.textContent = `The bot was not deleted: ${outcome.error}`;
    if (outcome.deleted) location.hash = '#/bots';
  });
});

/**
 * Shows the editor for a saved bot, or an empty one for a new bot.
 * @param {string | null} botId
 */
export async function showBotEditor(botId) {
  current = null;
  knowledge.stop();
  ui.extras.hidden = true;
  ui.deleteError.textContent = '';
  if (botId === null) {
    fill(null);
    showView('bot-edit');
    return;
  }
  fill(null);
  ui.title.textContent = 'Bot';
  showView('bot-edit');
  /** @type {import('../http.js').ApiResult<Bot>} */
  const result = await api('GET', botPath(botId));
  if (result.status !== 200 || result.data === null) {
    if (!handleSessionFailure(result)) ui.error.textContent = describeError(result);
    return;
  }
  current = result.data;
  fill(result.data);
  showShare(result.data);
  emailForm.show(result.data);
  tryIt.show(result.data);
  ui.extras.hidden = false;
  await knowledge.show(result.data);
}
