import cors, { type CorsOptions, type CorsOptionsDelegate } from 'cors';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { WidgetOrigins } from './widgetOrigins.js';

const ALLOWED_ORIGIN_OPTIONS: CorsOptions = { origin: true, credentials: true, maxAge: 600 };
/** A widget's host page talks to the API with a guest token only: never with this server's cookies. */
const WIDGET_ORIGIN_OPTIONS: CorsOptions = { origin: true, credentials: false, maxAge: 600 };
const GUEST_TOKEN_PATH = /^\/api\/bots\/([0-9a-f-]{36})\/guest-token$/i;

/**
 * CORS for the whitelist only: a listed origin gets exactly itself in Access-Control-Allow-Origin, with credentials;
 * any other origin (or none) gets no CORS header at all, not even Allow-Credentials or Allow-Methods on a
 * preflight. No wildcard is ever sent. Every answer varies by Origin, so caches keep them apart.
 */
export function allowedOriginsCors(allowedOrigins: readonly string[]): RequestHandler {
  const allowed = new Set(allowedOrigins);
  const withCors = cors(ALLOWED_ORIGIN_OPTIONS);
  return (req: Request, res: Response, next: NextFunction): void => {
    const origin = req.get('origin');
    if (origin !== undefined && allowed.has(origin)) {
      withCors(req, res, next);
      return;
    }
    res.vary('Origin');
    next();
  };
}

/**
 * CORS for the origins that public bots list for their widget (`allowedOrigins`), without credentials: a bot's
 * guest-token route for that bot's origins, and the conversation routes a guest token then uses (their preflight
 * carries no token, so there any public bot's origin is enough; the token itself came through the per-bot check).
 */
export function widgetOriginsCors(allowedOrigins: readonly string[], widgets: WidgetOrigins): RequestHandler {
  const allowed = new Set(allowedOrigins);
  const withCors = cors(WIDGET_ORIGIN_OPTIONS);
  const allows = async (path: string, origin: string): Promise<boolean> => {
    const botId = GUEST_TOKEN_PATH.exec(path)?.[1];
    if (botId !== undefined) return widgets.allowsForBot(botId, origin);
    if (path.startsWith('/api/conversations/')) return widgets.allowsForAnyBot(origin);
    return false;
  };
  return (req: Request, res: Response, next: NextFunction): void => {
    const origin = req.get('origin');
    if (origin === undefined || allowed.has(origin)) {
      next();
      return;
    }
    allows(req.path, origin).then((yes) => (yes ? withCors(req, res, next) : next()), next);
  };
}

/** The same rules as `cors` options for Socket.IO's engine (which calls the cors package itself). */
export function allowedOriginsCorsOptions(allowedOrigins: readonly string[], widgets: WidgetOrigins): CorsOptionsDelegate {
  const allowed = new Set(allowedOrigins);
  return (req, callback) => {
    const origin = req.headers.origin;
    if (origin === undefined) return callback(null, { origin: false });
    if (allowed.has(origin)) return callback(null, ALLOWED_ORIGIN_OPTIONS);
    widgets.allowsForAnyBot(origin).then(
      (yes) => callback(null, yes ? WIDGET_ORIGIN_OPTIONS : { origin: false }),
      () => callback(null, { origin: false }),
    );
  };
}
