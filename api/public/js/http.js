// @ts-check
// Every request of the page. The signed-in session is the HttpOnly cookie (never a token in storage);
// state-changing cookie requests carry the CSRF token read from the readable botserver_csrf cookie.

const CSRF_COOKIE = 'botserver_csrf';

/**
 * @template T
 * @typedef {object} ApiResult
 * @property {number} status 0 when the server could not be reached
 * @property {T | null} data the parsed JSON body (null when there was none)
 * @property {Headers} headers
 * @property {string | undefined} error the server's error code, `http_<status>` or `network_error`; undefined on success
 * @property {string | undefined} message the server's error message
 * @property {string | undefined} field the offending field of a 400 `invalid_request` (`rules.3.match`)
 */

/**
 * @typedef {object} RequestOptions
 * @property {unknown} [body] sent as JSON
 * @property {string} [bearer] a guest token: sent as the Authorization header, no cookies
 * @property {boolean} [anonymous] no cookies and no token
 */

/** @param {string} name */
export function readCookie(name) {
  for (const part of document.cookie.split(';')) {
    const index = part.indexOf('=');
    if (index < 0) continue;
    if (part.slice(0, index).trim() === name) {
      try {
        return decodeURIComponent(part.slice(index + 1).trim());
      } catch {
        return null;
      }
    }
  }
  return null;
}

export const csrfToken = () => readCookie(CSRF_COOKIE);

/**
 * An error's code, message and field from a parsed JSON body.
 * @param {number} status
 * @param {unknown} data
 * @returns {{ error: string | undefined, message: string | undefined, field: string | undefined }}
 */
export function errorOf(status, data) {
  if (status >= 200 && status < 300) return { error: undefined, message: undefined, field: undefined };
  const body = typeof data === 'object' && data !== null ? /** @type {Record<string, unknown>} */ (data) : {};
  return {
    error: typeof body.error === 'string' ? body.error : status === 0 ? 'network_error' : `http_${status}`,
    message: typeof body.message === 'string' ? body.message : undefined,
    field: typeof body.field === 'string' ? body.field : undefined,
  };
}

/**
 * One JSON request. The answer's type is the caller's to state (the server is our own API); whatever it holds is
 * only ever shown as text.
 * @template [T=Record<string, unknown>]
 * @param {string} method
 * @param {string} path
 * @param {RequestOptions} [options]
 * @returns {Promise<ApiResult<T>>}
 */
export async function api(method, path, { body, bearer, anonymous = false } = {}) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (bearer !== undefined) {
    headers.authorization = `Bearer ${bearer}`;
  } else if (!anonymous) {
    const csrf = csrfToken();
    if (csrf !== null) headers['x-csrf-token'] = csrf;
  }
  /** @type {Response} */
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: bearer !== undefined || anonymous ? 'omit' : 'same-origin',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch {
    return { status: 0, data: null, headers: new Headers(), ...errorOf(0, null) };
  }
  /** @type {unknown} */
  let data = null;
  const text = await response.text().catch(() => '');
  if (text !== '') {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  return { status: response.status, data: /** @type {T | null} */ (data), headers: response.headers, ...errorOf(response.status, data) };
}

/** `in 30 seconds` from a Retry-After header. @param {{ headers: Headers }} result */
export function retryAfterText(result) {
  const seconds = Number(result.headers.get('retry-after'));
  if (!Number.isFinite(seconds) || seconds <= 0) return 'later';
  return seconds >= 120 ? `in ${Math.ceil(seconds / 60)} minutes` : `in ${Math.ceil(seconds)} seconds`;
}

/**
 * A sentence for a failed request: ours for the codes a person should read differently, else the server's message.
 * @param {{ error?: string | undefined, message?: string | undefined, headers?: Headers }} result
 */
export function describeError(result) {
  switch (result.error) {
    case 'network_error':
      return 'The server cannot be reached. Check your connection and try again.';
    case 'rate_limited':
      return `Too many requests. Try again ${result.headers === undefined ? 'later' : retryAfterText({ headers: result.headers })}.`;
    case 'not_found':
      return 'This was not found, or you may not use it.';
    case 'forbidden':
      return 'You may not do this.';
    case 'mfa_enrollment_required':
      return 'Your account must enrol in multi-factor authentication before it can chat.';
    case 'message_too_large':
    case 'payload_too_large':
      return 'The message is too long.';
    case 'feature_disabled':
      return result.message ?? 'This feature is not enabled on this server.';
    case 'cannot_modify_self':
      return result.message ?? 'You cannot change your own account this way.';
    case 'handoff_required':
      return 'Take over the conversation before you write to the visitor.';
    default:
      return result.message ?? 'Something went wrong. Try again.';
  }
}
