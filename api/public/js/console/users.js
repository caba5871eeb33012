// @ts-check
// The tenant's accounts (admins): role, MFA, disabled, password state; invite with a one-time password shown once;
// change role, disable or enable, end all sessions.

import { handleSessionFailure } from '../auth.js';
import { byId, el } from '../dom.js';
import { yesNo } from '../format.js';
import { api, describeError } from '../http.js';
import { session } from '../session.js';
import { announce, onLeave, showView } from '../shell.js';
import { cell, clearErrors, confirmAction, copyValue, showFormError } from './forms.js';

/** @typedef {import('../../types/api').UserView} UserView */
/** @typedef {import('../../types/api').InvitedUser} InvitedUser */
/** @typedef {import('../../types/api').Role} Role */

const ROLE_NAMES = { admin: 'Administrator', operator: 'Operator', user: 'User' };

const ui = {
  inviteForm: byId('invite-form', HTMLFormElement),
  inviteEmail: byId('invite-email', HTMLInputElement),
  inviteRole: byId('invite-role', HTMLSelectElement),
  inviteSubmit: byId('invite-submit', HTMLButtonElement),
  inviteError: byId('invite-error', HTMLElement),
  result: byId('invite-result', HTMLElement),
  resultEmail: byId('invite-result-email', HTMLElement),
  password: byId('invite-password', HTMLInputElement),
  copy: byId('invite-copy', HTMLButtonElement),
  copyStatus: byId('invite-copy-status', HTMLElement),
  done: byId('invite-done', HTMLButtonElement),
  status: byId('users-status', HTMLElement),
  rows: byId('user-rows', HTMLElement),
};

/** The one-time password leaves the page as soon as the admin leaves the view. */
function forgetPassword() {
  ui.password.value = '';
  ui.resultEmail.textContent = '';
  ui.copyStatus.textContent = '';
  ui.result.hidden = true;
}
onLeave('users', forgetPassword);

/** @param {string} id */
const userPath = (id) => `/api/users/${encodeURIComponent(id)}`;

/**
 * A change to one account, with its result in the status line.
 * @param {UserView} user
 * @param {'PATCH' | 'DELETE'} method
 * @param {string} path
 * @param {unknown} body
 * @param {string} done what happened, for the status line
 */
async function change(user, method, path, body, done) {
  ui.status.textContent = '';
  const result = await api(method, path, body === undefined ? {} : { body });
  if (result.status === 200 || result.status === 204) {
    ui.status.textContent = done;
    await load();
    return;
  }
  if (handleSessionFailure(result)) return;
  ui.status.textContent = `${user.email}: ${describeError(result)}`;
}

/** @param {UserView} user */
function row(user) {
  const self = user.id === session.me?.id;
  const role = el('select', { attrs: { 'aria-label': `Role of ${user.email}` } }, ...Object.entries(ROLE_NAMES).map(([value, name]) => el('option', { text: name, attrs: { value } })));
  role.value = user.role;
  const saveRole = el('button', { className: 'secondary small', text: 'Change role', attrs: { type: 'button', 'aria-label': `Change the role of ${user.email}` } });
  saveRole.disabled = true;
  role.addEventListener('change', () => {
    saveRole.disabled = role.value === user.role;
  });
  saveRole.addEventListener('click', () => void change(user, 'PATCH', userPath(user.id), { role: role.value }, `${user.email} is now ${ROLE_NAMES[/** @type {Role} */ (role.value)] ?? role.value}.`));

  const toggle = el('button', { className: user.disabled ? 'secondary small' : 'danger small', text: user.disabled ? 'Enable' : 'Disable', attrs: { type: 'button', 'aria-label': `${user.disabled ? 'Enable' : 'Disable'} ${user.email}` } });
  toggle.addEventListener('click', () => {
    void (async () => {
      if (!user.disabled) {
        const confirmed = await confirmAction({ title: `Disable ${user.email}?`, text: 'They are signed out everywhere at once and cannot sign in until an administrator enables the account again.', confirm: 'Disable account' });
        if (!confirmed) return;
      }
      await change(user, 'PATCH', userPath(user.id), { disabled: !user.disabled }, `${user.email} is ${user.disabled ? 'enabled' : 'disabled'}.`);
    })();
  });
  const endSessions = el('button', { className: 'secondary small', text: 'End all sessions', attrs: { type: 'button', 'aria-label': `End all sessions of ${user.email}` } });
  endSessions.addEventListener('click', () => {
    void (async () => {
      const confirmed = await confirmAction({ title: `End every session of ${user.email}?`, text: 'They are signed out on every device and must sign in again.', confirm: 'End sessions' });
      if (confirmed) await change(user, 'DELETE', `${userPath(user.id)}/sessions`, undefined, `Every session of ${user.email} has ended.`);
    })();
  });
  // The server refuses an admin's change of their own role or account (409); the controls say so at once.
  if (self) {
    role.disabled = true;
    toggle.disabled = true;
  }
  return el(
    'tr',
    { data: { userId: user.id } },
    el('th', { text: self ? `${user.email} (you)` : user.email, attrs: { scope: 'row' } }),
    el('td', { className: 'role-cell' }, role, saveRole),
    cell(yesNo(user.mfa)),
    cell(user.disabled ? 'Disabled' : 'Active'),
    cell(user.mustChangePassword ? 'One-time password' : 'Own password'),
    el('td', { className: 'row-actions' }, toggle, endSessions),
  );
}

async function load() {
  /** @type {import('../http.js').ApiResult<{ users?: UserView[] }>} */
  const result = await api('GET', '/api/users');
  if (result.status !== 200) {
    if (!handleSessionFailure(result)) ui.status.textContent = describeError(result);
    return;
  }
  ui.rows.replaceChildren(...(result.data?.users ?? []).map(row));
}

/** @param {SubmitEvent} event */
async function onInvite(event) {
  event.preventDefault();
  clearErrors(ui.inviteForm, ui.inviteError);
  forgetPassword();
  const email = ui.inviteEmail.value.trim();
  if (email === '') {
    showFormError(ui.inviteForm, ui.inviteError, { status: 400, error: 'invalid_request', message: 'Enter the e-mail address of the person to invite.', field: 'email' });
    return;
  }
  ui.inviteSubmit.disabled = true;
  /** @type {import('../http.js').ApiResult<InvitedUser>} */
  const result = await api('POST', '/api/users', { body: { email, role: ui.inviteRole.value } });
  ui.inviteSubmit.disabled = false;
  if (result.status === 201 && result.data !== null) {
    ui.inviteForm.reset();
    ui.resultEmail.textContent = result.data.email;
    ui.password.value = result.data.password;
    ui.result.hidden = false;
    ui.result.focus();
    await load();
    return;
  }
  if (handleSessionFailure(result)) return;
  showFormError(ui.inviteForm, ui.inviteError, result, 'Not invited:');
}

ui.inviteForm.addEventListener('submit', (event) => void onInvite(event));
ui.copy.addEventListener('click', () => {
  void copyValue(ui.password).then((copied) => {
    ui.copyStatus.textContent = copied ? 'Copied to the clipboard.' : 'Selected: press Ctrl+C to copy.';
  });
});
ui.done.addEventListener('click', () => {
  forgetPassword();
  announce('The one-time password is no longer shown.');
  ui.inviteEmail.focus();
});

export async function showUsers() {
  ui.status.textContent = '';
  clearErrors(ui.inviteForm, ui.inviteError);
  showView('users');
  await load();
}
