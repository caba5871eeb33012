import type { NextFunction, Request, Response } from 'express';
import { AppError } from '../../shared/errors.js';
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

export function sendError(res: Response, req: Request, error: AppError): void {
  if (res.headersSent) return;
  const body: Record<string, unknown> = { error: error.code, message: error.expose ? error.message : 'Internal server error', requestId: req.requestId };
  if (error.expose && error.field !== undefined) body.field = error.field;
  res.status(error.status).json(body);
}

export function notFound(req: Request, res: Response): void {
  sendError(res, req, new AppError('not_found', 'No such route', { status: 404 }));
}

/** The last-resort handler: typed errors keep their code; anything else is logged and becomes a plain 500. */
export function errorHandler(error: unknown, req: Request, res: Response, _next: NextFunction): void {
  let appError: AppError;
  if (error instanceof AppError) appError = error;
  else if (isBodyParserError(error) && error.status < 500) appError = fromBodyParser(error);
  else appError = new AppError('internal_error', 'Internal server error', { status: 500, expose: false });
  if (appError.status >= 500) {
    log.error('request failed', { requestId: req.requestId, method: req.method, path: req.path, error: error instanceof Error ? { name: error.name, message: error.message, stack: error.stack } : String(error) });
  }
  sendError(res, req, appError);
}
