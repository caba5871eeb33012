// @ts-check
// The audit trail (admins): filters by type, actor and time, and "Verify chain" (a job: POST, then poll GET every
// second until it is done or failed).

import { handleSessionFailure } from '../auth.js';
import { byId, el, wait } from '../dom.js';
import { formatTime } from '../format.js';
import { api, describeError } from '../http.js';
import { onLeave, showView } from '../shell.js';
import { cell, clearErrors, showFormError } from './forms.js';

/** @typedef {import('../../types/api').AuditEvent} AuditEvent */
/** @typedef {import('../../types/api').VerifyRun} VerifyRun */

const POLL_MS = 1000;
/** Gives up waiting for a verification after this many polls (it keeps running on the server). */
const MAX_POLLS = 600;

const ui = {
  form: byId('audit-filter', HTMLFormElement),
  type: byId('audit-type', HTMLInputElement),
  actor: byId('audit-actor', HTMLInputElement),
  since: byId('audit-since', HTMLInputElement),
  until: byId('audit-until', HTMLInputElement),
  reset: byId('audit-reset', HTMLButtonElement),
  error: byId('audit-error', HTMLElement),
  verify: byId('audit-verify-button', HTMLButtonElement),
  verifyResult: byId('audit-verify-result', HTMLElement),
  status: byId('audit-status', HTMLElement),
  rows: byId('audit-rows', HTMLElement),
};

/** Bumped when the view is left, so a running poll stops. */
let visit = 0;
onLeave('audit', () => {
  visit += 1;
});

/** A `datetime-local` value (the reader's time) as an ISO instant. @param {HTMLInputElement} input */
function instant(input) {
  if (input.value === '') return undefined;
  const date = new Date(input.value);
  return Number.isNaN(date.getTime()) ? input.value : date.toISOString();
}

/** user id → e-mail, so the trail names the people of this tenant (others stay ids or pseudonyms). @type {Map<string, string>} */
let people = new Map();

async function loadPeople() {
  /** @type {import('../http.js').ApiResult<{ users?: Array<{ id: string, email: string }> }>} */
  const result = await api('GET', '/api/users');
  if (result.status === 200) people = new Map((result.data?.users ?? []).map((user) => [user.id, user.email]));
}

/** @param {string | null} actor */
function actorCell(actor) {
  if (actor === null) return cell('—');
  const email = people.get(actor);
  if (email === undefined) return cell(actor, 'mono');
  return el('td', {}, el('span', { text: email }), el('br'), el('span', { className: 'mono subtle', text: actor }));
}

/** @param {AuditEvent} event */
function row(event) {
  const details = event.details !== null && typeof event.details === 'object' && Object.keys(event.details).length > 0 ? JSON.stringify(event.details) : '';
  return el(
    'tr',
    { data: { eventId: event.id, type: event.type } },
    el('th', { text: formatTime(event.time), attrs: { scope: 'row' } }),
    cell(event.type, 'mono nowrap'),
    el('td', {}, el('span', { className: `outcome outcome-${event.outcome}`, text: event.outcome })),
    actorCell(event.actor),
    cell(event.target ?? '—', 'mono'),
    cell(details, 'mono details'),
  );
}

async function load() {
  clearErrors(ui.form, ui.error);
  const query = new URLSearchParams();
  const type = ui.type.value.trim();
  const actor = ui.actor.value.trim();
  const since = instant(ui.since);
  const until = instant(ui.until);
  if (type !== '') query.set('type', type);
  if (actor !== '') query.set('actor', actor);
  if (since !== undefined) query.set('since', since);
  if (until !== undefined) query.set('until', until);
  ui.status.textContent = 'Loading…';
  /** @type {import('../http.js').ApiResult<{ events?: AuditEvent[] }>} */
  const result = await api('GET', `/api/audit${query.size > 0 ? `?${query.toString()}` : ''}`);
  ui.status.textContent = '';
  if (result.status !== 200) {
    if (handleSessionFailure(result)) return;
    showFormError(ui.form, ui.error, result);
    return;
  }
  const events = result.data?.events ?? [];
  ui.rows.replaceChildren(...events.map(row));
  ui.status.textContent = events.length === 1 ? '1 event.' : `${events.length} events.`;
}

/** @param {VerifyRun} run */
function describeRun(run) {
  if (run.state === 'none') return 'The chain has not been verified yet.';
  if (run.state === 'queued') return 'Verification queued…';
  if (run.state === 'running') return 'Verifying the chain…';
  if (run.state === 'failed') return 'The verification could not run. Try again.';
  const checked = typeof run.checked === 'number' ? `${run.checked} events checked` : 'events checked';
  if (run.ok === true) return `Chain intact: ${checked}${run.finishedAt === undefined ? '' : `, ${formatTime(run.finishedAt)}`}.`;
  return `Chain broken at event ${run.firstBrokenId ?? '(unknown)'}: an event was changed, removed or reordered (${checked}).`;
}

async function verify() {
  const mine = visit;
  ui.verify.disabled = true;
  ui.verifyResult.dataset.state = 'running';
  ui.verifyResult.textContent = 'Starting the verification…';
  try {
    const started = await api('POST', '/api/audit/verify', { body: {} });
    if (started.status !== 202) {
      if (handleSessionFailure(started)) return;
      ui.verifyResult.dataset.state = 'error';
      ui.verifyResult.textContent = `The verification did not start: ${describeError(started)}`;
      return;
    }
    const jobId = /** @type {{ jobId?: unknown } | null} */ (started.data)?.jobId;
    for (let poll = 0; poll < MAX_POLLS; poll += 1) {
      await wait(POLL_MS);
      if (visit !== mine) return;
      /** @type {import('../http.js').ApiResult<VerifyRun>} */
      const result = await api('GET', '/api/audit/verify');
      if (visit !== mine) return;
      if (result.status !== 200 || result.data === null) {
        if (handleSessionFailure(result)) return;
        ui.verifyResult.dataset.state = 'error';
        ui.verifyResult.textContent = `The result could not be read: ${describeError(result)}`;
        return;
      }
      const run = result.data;
      // The latest run may still be an older one for a moment.
      if (run.state !== 'none' && typeof jobId === 'string' && run.jobId !== jobId) continue;
      if (run.state === 'done' || run.state === 'failed') {
        ui.verifyResult.dataset.state = run.state === 'done' && run.ok === true ? 'ok' : 'error';
        ui.verifyResult.textContent = describeRun(run);
        return;
      }
      if (ui.verifyResult.textContent !== describeRun(run)) ui.verifyResult.textContent = describeRun(run);
    }
    ui.verifyResult.dataset.state = 'error';
    ui.verifyResult.textContent = 'The verification is taking long; it goes on on the server. Check again later.';
  } finally {
    ui.verify.disabled = false;
  }
}

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  void load();
});
ui.reset.addEventListener('click', () => {
  ui.form.reset();
  void load();
});
ui.verify.addEventListener('click', () => void verify());

/** @param {string} [actor] open the trail filtered by this actor */
export async function showAudit(actor) {
  if (actor !== undefined) ui.actor.value = actor;
  showView('audit');
  await loadPeople();
  await load();
}
