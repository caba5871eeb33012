import type { NextFunction, Request, Response } from 'express';
import { AppError, UnavailableError } from '../../shared/errors.js';
import { clientErrorOf } from '../../shared/failures.js';
import { log } from '../../shared/log/index.js';

interface BodyParserError {
  type: string;
  status: number;
}

function isBodyParserError(error: unknown): error is BodyParserError {
  return typeof error === 'object' && error !== null && typeof (error as BodyParserError).type === 'string' && typeof (error as BodyParserError).status === 'number';
}

/** Maps what body-parser throws to our codes; its own messages are never shown. */
function fromBodyParser(error: BodyParserError): AppError {
  switch (error.type) {
    case 'entity.parse.failed':
      return new AppError('invalid_json', 'The request body is not valid JSON', { status: 400 });
    case 'entity.too.large':
      return new AppError('payload_too_large', 'The request body is too large', { status: 413 });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new AppError('unsupported_encoding', 'The request body encoding is not supported', { status: 415 });
    default:
      return new AppError('invalid_request', 'The request body could not be read', { status: 400 });
  }
}

/** Codes for the 4xx statuses other libraries (router, serve-static, http-errors) report; their messages are never shown. */
const LIBRARY_STATUS: Record<number, { code: string; message: string }> = {
  400: { code: 'invalid_request', message: 'The request is malformed' },
  403: { code: 'forbidden', message: 'You may not do this' },
  404: { code: 'not_found', message: 'Not found' },
  405: { code: 'method_not_allowed', message: 'This method is not allowed here' },
  406: { code: 'not_acceptable', message: 'No acceptable representation' },
  412: { code: 'precondition_failed', message: 'A precondition failed' },
  413: { code: 'payload_too_large', message: 'The request body is too large' },
  414: { code: 'uri_too_long', message: 'The request URI is too long' },
  415: { code: 'unsupported_media_type', message: 'The request body type is not supported' },
  416: { code: 'range_not_satisfiable', message: 'The requested range cannot be served' },
};

/** A library's 4xx (e.g. the router's URIError for `%ZZ` in a path, serve-static's 403 for a malicious path). */
function clientStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { status, statusCode } = error as { status?: unknown; statusCode?: unknown };
  const value = typeof status === 'number' ? status : statusCode;
  return typeof value === 'number' && Number.isInteger(value) && value >= 400 && value < 500 ? value : undefined;
}

function fromLibrary(status: number): AppError {
  const known = LIBRARY_STATUS[status];
  return known === undefined ? new AppError('invalid_request', 'The request was refused', { status }) : new AppError(known.code, known.message, { status });
}

export function sendError(res: Response, req: Request, error: AppError): void {
  if (res.headersSent) return;
  const body: Record<string, unknown> = { error: error.code, message: error.expose ? error.message : 'Internal server error', requestId: req.requestId };
  if (error.expose && error.field !== undefined) body.field = error.field;
  if (error instanceof UnavailableError) {
    // A passing outage: when to try again, in the header (whole seconds) and exactly in the body.
    body.retryAfterMs = error.retryAfterMs;
    res.setHeader('Retry-After', String(Math.ceil(error.retryAfterMs / 1000)));
  }
  res.status(error.status).json(body);
}

export function notFound(req: Request, res: Response): void {
  sendError(res, req, new AppError('not_found', 'No such route', { status: 404 }));
}

/** The last-resort handler: typed errors keep their code; anything else is logged and becomes a plain 500. */
export function errorHandler(error: unknown, req: Request, res: Response, _next: NextFunction): void {
  let appError: AppError;
  const libraryStatus = clientStatusOf(error);
  if (error instanceof AppError) appError = error;
  else if (isBodyParserError(error) && error.status < 500) appError = fromBodyParser(error);
  else if (libraryStatus !== undefined) {
    // Like Express's own final handler: the status is kept, the library's message (which may echo input) is not.
    appError = fromLibrary(libraryStatus);
    log.info('request refused by a library', { requestId: req.requestId, method: req.method, status: libraryStatus, error: error instanceof Error ? error.name : typeof error });
  }
  else appError = clientErrorOf(error) ?? new AppError('internal_error', 'Internal server error', { status: 500, expose: false });
  if (appError instanceof UnavailableError) {
    log.warn('request refused: a dependency is unavailable', { requestId: req.requestId, method: req.method, path: req.path, error: error instanceof Error ? error.message : String(error) });
  } else if (appError.status >= 500) {
    log.error('request failed', { requestId: req.requestId, method: req.method, path: req.path, error: error instanceof Error ? { name: error.name, message: error.message, stack: error.stack } : String(error) });
  }
  sendError(res, req, appError);
}
