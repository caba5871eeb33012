// @ts-check
// Small DOM helpers. Every text from the server or the user goes in as textContent (or a Text node), never as HTML.

/**
 * The element with this id, of this type; a missing or different element is a bug in the page, so it throws.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{ new (): T }} type
 * @returns {T}
 */
export function byId(id, type) {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`missing element #${id}`);
  return element;
}

/**
 * @typedef {object} ElementOptions
 * @property {string} [className]
 * @property {string} [text] textContent
 * @property {Record<string, string>} [attrs] attributes (never `style` or an event handler: the CSP forbids both)
 * @property {Record<string, string>} [data] data-* attributes
 */

/**
 * A new element with text, attributes and children.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {ElementOptions} [options]
 * @param {Array<Node | string>} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, options = {}, ...children) {
  const element = document.createElement(tag);
  if (options.className !== undefined) element.className = options.className;
  if (options.text !== undefined) element.textContent = options.text;
  for (const [name, value] of Object.entries(options.attrs ?? {})) element.setAttribute(name, value);
  for (const [name, value] of Object.entries(options.data ?? {})) element.dataset[name] = value;
  element.append(...children);
  return element;
}

/**
 * A button that runs `onClick` (its promise is awaited while the button is disabled, so it cannot run twice).
 * @param {string} text
 * @param {() => unknown} onClick
 * @param {ElementOptions} [options]
 * @returns {HTMLButtonElement}
 */
export function button(text, onClick, options = {}) {
  const element = el('button', { ...options, text });
  element.type = 'button';
  element.addEventListener('click', () => {
    if (element.disabled) return;
    element.disabled = true;
    Promise.resolve()
      .then(onClick)
      .catch(() => undefined)
      .finally(() => {
        element.disabled = false;
      });
  });
  return element;
}

/** @param {number} ms */
export const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
