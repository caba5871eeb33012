import { AppError, UnavailableError } from './errors.js';

/**
 * One classification of failures for HTTP, Socket.IO and the workers: a dependency that does not answer (Redis,
 * PostgreSQL, Qdrant, S3, SMTP/IMAP, the LLM endpoint) is `unavailable` — a passing outage, to be retried later —
 * and anything else that is not an AppError is a bug (`internal_error`).
 */

/** Socket and DNS failures of Node (net, tls, dns, undici) that mean "the peer is not there right now". */
export const CONNECTION_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/**
 * PostgreSQL SQLSTATEs of an outage: class 08 (connection exception), 57P01-57P03 (admin or crash shutdown, cannot
 * connect now), 53300 (too many connections).
 */
function isPostgresOutage(code: string): boolean {
  return code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300';
}

/** Error names of the clients we use when their server is gone (ioredis, knex's pool, fetch, AWS SDK). */
const OUTAGE_NAMES = new Set(['MaxRetriesPerRequestError', 'KnexTimeoutError', 'TimeoutError', 'AbortError', 'ConnectionTimeoutError']);

/** Messages of node-postgres and ioredis that carry no code. */
const OUTAGE_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^Client has encountered a connection error and is not queryable/,
  /^Connection is closed\.?$/,
  /^Stream isn't writeable and enableOfflineQueue options is false/,
  /^Reached the max retries per request limit/,
  /^connect ECONNREFUSED/,
];

/** Whether `error` (or its cause, or one of an AggregateError's errors) says that a dependency did not answer. */
export function isDependencyFailure(error: unknown, depth = 0): boolean {
  if (depth > 5 || typeof error !== 'object' || error === null) return false;
  if (error instanceof UnavailableError) return true;
  if (error instanceof AppError) return false;
  const { code, name, message, cause } = error as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || (/^[0-9A-Z]{5}$/.test(code) && isPostgresOutage(code)))) return true;
  if (typeof name === 'string' && OUTAGE_NAMES.has(name)) return true;
  // undici's fetch reports every network failure (refused, reset, DNS, TLS) as this TypeError, with the reason as cause.
  if (error instanceof TypeError && message === 'fetch failed') return true;
  if (typeof message === 'string' && OUTAGE_MESSAGES.some((pattern) => pattern.test(message))) return true;
  if (error instanceof AggregateError && error.errors.some((inner) => isDependencyFailure(inner, depth + 1))) return true;
  return isDependencyFailure(cause, depth + 1);
}

/**
 * What a client is told about a failure: an AppError keeps its code; a dependency failure becomes
 * `UnavailableError` (503, retry after RETRY_AFTER_MS); anything else is undefined (a bug: `internal_error`).
 */
export function clientErrorOf(error: unknown): AppError | undefined {
  if (error instanceof AppError) return error;
  if (isDependencyFailure(error)) return new UnavailableError('A service this request needs is not answering right now; try again shortly', error);
  return undefined;
}

