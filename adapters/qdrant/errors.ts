import { QdrantClientResourceExhaustedError, QdrantClientTimeoutError } from '@qdrant/js-client-rest';
import { AppError, UnavailableError } from '../../shared/errors.js';
import { CONNECTION_CODES } from '../../shared/failures.js';

/** HTTP statuses that mean "not now" rather than "no": overloaded, rate limited, a proxy without its upstream. */
const UNAVAILABLE_STATUSES = new Set([429, 502, 503, 504]);

/** Longest part of Qdrant's own error text carried into our message (it names fields, never payload values). */
const MAX_DETAIL = 300;

/**
 * The HTTP status of a non-2xx answer. The client throws the `ApiError` of `@qdrant/openapi-typescript-fetch`, a
 * package this adapter does not import, so it is recognised by shape (`status`, `url`, `data`).
 */
export function httpStatusOf(error: unknown): number | undefined {
  if (!(error instanceof Error) || !('data' in error) || !('url' in error)) return undefined;
  const status = (error as { status?: unknown }).status;
  return typeof status === 'number' ? status : undefined;
}

/** Qdrant's `{status: {error}}` text of a non-2xx answer, shortened. */
export function qdrantMessageOf(error: unknown): string | undefined {
  if (httpStatusOf(error) === undefined) return undefined;
  const data = (error as { data?: unknown }).data;
  if (typeof data !== 'object' || data === null) return undefined;
  const status = (data as { status?: unknown }).status;
  if (typeof status !== 'object' || status === null) return undefined;
  const text = (status as { error?: unknown }).error;
  if (typeof text !== 'string') return undefined;
  return text.length <= MAX_DETAIL ? text : `${text.slice(0, MAX_DETAIL)}…`;
}

/** A connection that could not be made or broke, a timeout, or Qdrant saying it cannot serve now. */
export function isUnavailable(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > 5) return false;
  if (error instanceof QdrantClientTimeoutError || error instanceof QdrantClientResourceExhaustedError) return true;
  if (error.name === 'AbortError' || error.name === 'TimeoutError') return true;
  // undici's fetch reports every network failure (refused, reset, DNS, TLS, bad port) as this TypeError.
  if (error instanceof TypeError && error.message === 'fetch failed') return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true;
  const status = httpStatusOf(error);
  if (status !== undefined && UNAVAILABLE_STATUSES.has(status)) return true;
  if (error instanceof AggregateError && error.errors.some((inner) => isUnavailable(inner, depth + 1))) return true;
  return isUnavailable(error.cause, depth + 1);
}

/** Qdrant refused to create a collection because another process has just created it. */
export function isAlreadyExists(error: unknown): boolean {
  const status = httpStatusOf(error);
  if (status === 409) return true;
  return status === 400 && /already exists/i.test(qdrantMessageOf(error) ?? '');
}

/**
 * Every failure leaves the adapter as an AppError: `UnavailableError` (503) when Qdrant cannot be reached or cannot
 * serve now, otherwise `vector_store_error` (502, not shown to clients). The message names the operation, the HTTP
 * status and Qdrant's own error text; never a vector or payload (the client's errors carry only the response).
 */
export function translateQdrantError(error: unknown, operation: string): AppError {
  if (error instanceof AppError) return error;
  if (isUnavailable(error)) return new UnavailableError(`Qdrant is not reachable (${operation})`, error);
  const status = httpStatusOf(error);
  const detail = qdrantMessageOf(error);
  const message = `Qdrant ${operation} failed${status === undefined ? '' : ` (HTTP ${status})`}${detail === undefined ? '' : `: ${detail}`}`;
  return new AppError('vector_store_error', message, { status: 502, expose: false, cause: error });
}
