// @ts-check
// Shared pieces of the console's forms: the server's error shown next to the offending field, a confirmation
// dialog, copying a value.

import { byId, el } from '../dom.js';
import { describeError } from '../http.js';

/**
 * @typedef {object} FailedResult
 * @property {number} status
 * @property {string | undefined} error
 * @property {string | undefined} message
 * @property {string | undefined} field
 * @property {Headers} [headers]
 */

/** Removes the marks a previous error left in a form. @param {HTMLElement} form @param {HTMLElement} summary */
export function clearErrors(form, summary) {
  summary.textContent = '';
  for (const field of form.querySelectorAll('[aria-invalid="true"]')) {
    field.removeAttribute('aria-invalid');
    const described = (field.getAttribute('aria-describedby') ?? '').split(' ').filter((id) => !id.endsWith('-field-error'));
    if (described.length > 0) field.setAttribute('aria-describedby', described.join(' '));
    else field.removeAttribute('aria-describedby');
  }
  for (const message of form.querySelectorAll('.field-error')) message.remove();
}

/**
 * The control for an API field path (`rules.3.match`): the element whose data-field is that path, else the nearest
 * parent path's (`rules.3`, `rules`).
 * @param {HTMLElement} form
 * @param {string} field
 */
function controlFor(form, field) {
  const parts = field.split('.');
  while (parts.length > 0) {
    const control = form.querySelector(`[data-field="${CSS.escape(parts.join('.'))}"]`);
    if (control instanceof HTMLElement) return control;
    parts.pop();
  }
  return null;
}

/**
 * Shows a failed request's message in the form's summary and next to the offending field (marked invalid,
 * described by the message, focused).
 * @param {HTMLElement} form
 * @param {HTMLElement} summary the form's `role="alert"` line
 * @param {FailedResult} result
 * @param {string} [prefix] what failed, before the server's message
 */
export function showFormError(form, summary, result, prefix = '') {
  clearErrors(form, summary);
  const text = describeError(result);
  summary.textContent = prefix === '' ? text : `${prefix} ${text}`;
  const control = result.field === undefined ? null : controlFor(form, result.field);
  if (control === null) return;
  const id = `${control.id === '' ? 'form' : control.id}-field-error`;
  const message = el('p', { className: 'field-error', text, attrs: { id } });
  // A group (a fieldset) gets the message under its legend; a single control, after its field.
  const legend = control instanceof HTMLFieldSetElement ? control.querySelector(':scope > legend') : null;
  if (legend !== null) legend.after(message);
  else (control.closest('.field') ?? control).after(message);
  control.setAttribute('aria-invalid', 'true');
  control.setAttribute('aria-describedby', `${control.getAttribute('aria-describedby') ?? ''} ${id}`.trim());
  control.focus();
}

const dialog = {
  element: byId('confirm-dialog', HTMLDialogElement),
  title: byId('confirm-title', HTMLElement),
  text: byId('confirm-text', HTMLElement),
  ok: byId('confirm-ok', HTMLButtonElement),
  cancel: byId('confirm-cancel', HTMLButtonElement),
};
dialog.ok.addEventListener('click', () => dialog.element.close('ok'));
dialog.cancel.addEventListener('click', () => dialog.element.close('cancel'));

/**
 * Asks before something that cannot be undone. A modal dialog: the focus stays in it, Escape cancels, and the
 * focus returns to where it was.
 * @param {{ title: string, text: string, confirm: string }} question
 * @returns {Promise<boolean>}
 */
export function confirmAction({ title, text, confirm }) {
  dialog.title.textContent = title;
  dialog.text.textContent = text;
  dialog.ok.textContent = confirm;
  dialog.element.returnValue = '';
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.element.addEventListener(
      'close',
      () => {
        if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
        resolve(dialog.element.returnValue === 'ok');
      },
      { once: true },
    );
    dialog.element.showModal();
    dialog.cancel.focus();
  });
}

/**
 * Copies a value to the clipboard; where the Clipboard API is refused, selects it so the person can copy it.
 * @param {HTMLInputElement | HTMLTextAreaElement} field
 * @returns {Promise<boolean>} whether it was copied
 */
export async function copyValue(field) {
  try {
    await navigator.clipboard.writeText(field.value);
    return true;
  } catch {
    field.focus();
    field.select();
    return false;
  }
}

/** A table cell with text. @param {string} text @param {string} [className] */
export const cell = (text, className) => el('td', className === undefined ? { text } : { text, className });
