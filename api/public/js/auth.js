// @ts-check
// Sign-in (with TOTP when asked), the forced password change, sign-out.

import { byId } from './dom.js';
import { api, describeError, retryAfterText } from './http.js';
import { session, setSession } from './session.js';
import { shell, showNotice, showView } from './shell.js';

/** @typedef {import('../types/api').Me} Me */

const ui = {
  loginForm: byId('login-form', HTMLFormElement),
  loginEmail: byId('login-email', HTMLInputElement),
  loginPassword: byId('login-password', HTMLInputElement),
  totpField: byId('totp-field', HTMLElement),
  loginTotp: byId('login-totp', HTMLInputElement),
  loginError: byId('login-error', HTMLElement),
  loginSubmit: byId('login-submit', HTMLButtonElement),
  passwordForm: byId('password-form', HTMLFormElement),
  passwordUsername: byId('password-username', HTMLInputElement),
  passwordCurrent: byId('password-current', HTMLInputElement),
  passwordNew: byId('password-new', HTMLInputElement),
  passwordConfirm: byId('password-confirm', HTMLInputElement),
  passwordError: byId('password-error', HTMLElement),
  passwordSubmit: byId('password-submit', HTMLButtonElement),
};

/** What happens once someone is signed in (the home view); set by the app. @type {() => Promise<void>} */
let home = () => Promise.resolve();

export function showLogin(message = '') {
  setSession('anonymous', null);
  ui.loginError.textContent = message;
  ui.totpField.hidden = true;
  ui.loginTotp.value = '';
  ui.loginPassword.value = '';
  showView('login', ui.loginEmail);
}

export function showPasswordChange(currentPassword = '') {
  setSession('user', session.me);
  ui.passwordForm.reset();
  // For password managers: the account the new password belongs to (a hidden, read-only field).
  ui.passwordUsername.value = session.me?.email ?? ui.loginEmail.value.trim();
  ui.passwordCurrent.value = currentPassword;
  ui.passwordError.textContent = '';
  showView('password', currentPassword === '' ? ui.passwordCurrent : ui.passwordNew);
}

/**
 * Maps an answer on a cookie-session request that means "not signed in any more" to the right view.
 * @param {{ status: number, error?: string | undefined }} result
 * @returns {boolean} whether it was such an answer
 */
export function handleSessionFailure(result) {
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

/** Loads the signed-in account and shows the home view. */
export async function afterSignIn() {
  /** @type {import('./http.js').ApiResult<Me>} */
  const me = await api('GET', '/api/me');
  if (me.status !== 200 || me.data === null) {
    if (!handleSessionFailure(me)) showLogin(describeError(me));
    return;
  }
  setSession('user', me.data);
  await home();
}

/** @param {SubmitEvent} event */
async function onLoginSubmit(event) {
  event.preventDefault();
  const email = ui.loginEmail.value.trim();
  const password = ui.loginPassword.value;
  if (email === '' || password === '') {
    ui.loginError.textContent = 'Enter your e-mail and password.';
    (email === '' ? ui.loginEmail : ui.loginPassword).focus();
    return;
  }
  /** @type {{ email: string, password: string, totp?: string }} */
  const body = { email, password };
  const totp = ui.loginTotp.value.trim();
  if (!ui.totpField.hidden && totp !== '') body.totp = totp;

  ui.loginSubmit.disabled = true;
  ui.loginError.textContent = '';
  /** @type {import('./http.js').ApiResult<{ passwordChangeRequired?: boolean }>} */
  const result = await api('POST', '/auth/login?cookie=1', { body });
  ui.loginSubmit.disabled = false;

  if (result.status === 200) {
    // The response also holds an access/refresh token pair; the page does not keep them: the cookie is the session.
    ui.loginPassword.value = '';
    ui.loginTotp.value = '';
    ui.totpField.hidden = true;
    if (result.data?.passwordChangeRequired === true) {
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

/** @param {SubmitEvent} event */
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
  shell.logout.disabled = true;
  await api('POST', '/auth/logout');
  shell.logout.disabled = false;
  showNotice('');
  history.replaceState(null, '', location.pathname);
  showLogin('You have signed out.');
}

/** @param {() => Promise<void>} showHome */
export function initAuth(showHome) {
  home = showHome;
  ui.loginForm.addEventListener('submit', (event) => void onLoginSubmit(event));
  ui.passwordForm.addEventListener('submit', (event) => void onPasswordSubmit(event));
  shell.logout.addEventListener('click', () => void onLogout());
}
