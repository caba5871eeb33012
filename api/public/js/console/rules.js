// @ts-check
// The rules editor: one row per rule (match, reply, "hand over to a person"), added, removed and reordered with
// buttons. Each control's data-field is its API path (`rules.2.reply`), so a refused rule is marked where it is.

import { el } from '../dom.js';
import { announce } from '../shell.js';

/** @typedef {import('../../types/api').Rule} Rule */

/**
 * @typedef {object} RuleRow
 * @property {HTMLLIElement} item
 * @property {HTMLLegendElement} legend
 * @property {HTMLInputElement} match
 * @property {HTMLTextAreaElement} reply
 * @property {HTMLInputElement} handoff
 * @property {HTMLButtonElement} up
 * @property {HTMLButtonElement} down
 * @property {HTMLButtonElement} remove
 */

let nextId = 0;

export class RulesEditor {
  /**
   * @param {HTMLOListElement | HTMLElement} list
   * @param {HTMLButtonElement} addButton
   * @param {HTMLElement} emptyNote
   */
  constructor(list, addButton, emptyNote) {
    this.list = list;
    this.emptyNote = emptyNote;
    /** @type {RuleRow[]} */
    this.rows = [];
    addButton.addEventListener('click', () => {
      const row = this.add({ match: '', reply: '' });
      row.match.focus();
    });
  }

  /** @param {Rule[]} rules */
  set(rules) {
    this.rows = [];
    this.list.replaceChildren();
    for (const rule of rules) this.add(rule);
    this.renumber();
  }

  /** The rules as the API takes them, in their order. @returns {Rule[]} */
  get() {
    return this.rows.map((row) => (row.handoff.checked ? { match: row.match.value, reply: row.reply.value, handoff: true } : { match: row.match.value, reply: row.reply.value }));
  }

  /** @param {Rule} rule */
  add(rule) {
    const id = `rule-${(nextId += 1)}`;
    const match = el('input', { attrs: { id: `${id}-match`, type: 'text', maxlength: '200', autocomplete: 'off', spellcheck: 'false' } });
    match.value = String(rule.match ?? '');
    const reply = el('textarea', { attrs: { id: `${id}-reply`, rows: '2', maxlength: '4000' } });
    reply.value = String(rule.reply ?? '');
    const handoff = el('input', { attrs: { id: `${id}-handoff`, type: 'checkbox' } });
    handoff.checked = rule.handoff === true;
    const up = el('button', { className: 'secondary small', text: 'Move up', attrs: { type: 'button' } });
    const down = el('button', { className: 'secondary small', text: 'Move down', attrs: { type: 'button' } });
    const remove = el('button', { className: 'secondary small', text: 'Remove', attrs: { type: 'button' } });
    const legend = el('legend');
    const item = el(
      'li',
      { className: 'rule-row' },
      el(
        'fieldset',
        {},
        legend,
        el('div', { className: 'field' }, el('label', { text: 'When the message contains', attrs: { for: match.id } }), match),
        el('div', { className: 'field' }, el('label', { text: 'Reply', attrs: { for: reply.id } }), reply),
        el('div', { className: 'field check' }, handoff, el('label', { text: 'Then hand the conversation over to a person', attrs: { for: handoff.id } })),
        el('div', { className: 'rule-actions' }, up, down, remove),
      ),
    );
    /** @type {RuleRow} */
    const row = { item, legend, match, reply, handoff, up, down, remove };
    // A problem with the rule as a whole (`rules.3`) is shown on, and focuses, its row.
    item.tabIndex = -1;
    up.addEventListener('click', () => this.move(row, -1));
    down.addEventListener('click', () => this.move(row, 1));
    remove.addEventListener('click', () => this.remove(row));
    this.rows.push(row);
    this.list.append(item);
    this.renumber();
    return row;
  }

  /** @param {RuleRow} row @param {number} delta */
  move(row, delta) {
    const from = this.rows.indexOf(row);
    const to = from + delta;
    if (from < 0 || to < 0 || to >= this.rows.length) return;
    this.rows.splice(from, 1);
    this.rows.splice(to, 0, row);
    this.list.replaceChildren(...this.rows.map((entry) => entry.item));
    this.renumber();
    // The focus stays on the button pressed; at an end, on the other one.
    (delta < 0 ? (row.up.disabled ? row.down : row.up) : row.down.disabled ? row.up : row.down).focus();
    announce(`Rule moved to position ${to + 1} of ${this.rows.length}.`);
  }

  /** @param {RuleRow} row */
  remove(row) {
    const index = this.rows.indexOf(row);
    if (index < 0) return;
    this.rows.splice(index, 1);
    row.item.remove();
    this.renumber();
    const neighbour = this.rows[Math.min(index, this.rows.length - 1)];
    (neighbour?.match ?? this.list.closest('fieldset') ?? this.list).focus();
    announce(`Rule ${index + 1} removed.`);
  }

  renumber() {
    this.rows.forEach((row, index) => {
      const number = index + 1;
      row.legend.textContent = `Rule ${number}`;
      row.match.dataset.field = `rules.${index}.match`;
      row.reply.dataset.field = `rules.${index}.reply`;
      row.handoff.dataset.field = `rules.${index}.handoff`;
      row.item.dataset.field = `rules.${index}`;
      row.up.disabled = index === 0;
      row.down.disabled = index === this.rows.length - 1;
      row.up.setAttribute('aria-label', `Move rule ${number} up`);
      row.down.setAttribute('aria-label', `Move rule ${number} down`);
      row.remove.setAttribute('aria-label', `Remove rule ${number}`);
    });
    this.emptyNote.hidden = this.rows.length > 0;
  }
}
