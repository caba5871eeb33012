import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router, type Request, type Response } from 'express';
import { isUuid } from '../../shared/db/index.js';
import { ForbiddenError, NotFoundError } from '../../shared/errors.js';
import { accountDuties, authenticate, CSRF_HEADER, requireAuth } from '../auth/authenticate.js';
import type { ApiContext } from '../context.js';

/** The page's static files (HTML, one JS module, one stylesheet). */
const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url));

/** socket.io-client's browser bundle, served from node_modules so the page needs no CDN and no build step. */
function socketIoClient(): { path: string; version: string } {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('socket.io-client/package.json');
  const { version } = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string };
  return { path: join(dirname(manifest), 'dist', 'socket.io.min.js'), version };
}

/** A page, read once; the socket.io URL carries the client's version so its long cache never serves a stale copy. */
function loadPage(file: string, socketIoVersion: string): string {
  return readFileSync(join(PUBLIC_DIR, file), 'utf8').replaceAll('__SOCKET_IO_VERSION__', encodeURIComponent(socketIoVersion));
}

/** The page's policy with `frame-ancestors` replaced: the widget's frame may be shown by exactly these origins. */
export function frameAncestorsPolicy(policy: string, origins: readonly string[]): string {
  const directives = policy
    .split(';')
    .map((directive) => directive.trim())
    .filter((directive) => directive !== '' && !directive.startsWith('frame-ancestors'));
  return [...directives, `frame-ancestors ${origins.length === 0 ? "'none'" : origins.join(' ')}`].join(';');
}

/**
 * The web chat: `GET /` (the page), `/assets/*` (its files and the Socket.IO client) and `GET /auth/socket-token`.
 *
 * Mounted before the global authentication middleware: the page and its assets are public and need no session
 * lookup (and must load even while an account still owes a password change); the token route authenticates itself.
 */
export function webchatRoutes(ctx: ApiContext): Router {
  const router = Router();
  const client = socketIoClient();
  const page = loadPage('index.html', client.version);
  const widgetPage = loadPage('widget.html', client.version);

  router.get('/', (_req: Request, res: Response) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.type('html').send(page);
  });

  /** The embed script for other sites: `<script src=".../widget.js" data-bot="<id>" async>`. */
  router.get('/widget.js', (_req: Request, res: Response) => {
    // Loaded by other origins' pages as a classic script, which the default same-origin resource policy would block.
    res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
    res.sendFile(join(PUBLIC_DIR, 'widget.js'), { maxAge: '5m', dotfiles: 'deny' });
  });

  /** The widget's chat frame for a public bot, which only the bot's allowed origins may frame. */
  router.get('/widget/:botId', async (req: Request, res: Response) => {
    const botId = req.params.botId;
    const origins = isUuid(botId) ? await ctx.widgetOrigins.ofBot(botId) : [];
    if (origins.length === 0) throw new NotFoundError('No such widget');
    const policy = res.getHeader('Content-Security-Policy');
    res.setHeader('Content-Security-Policy', frameAncestorsPolicy(typeof policy === 'string' ? policy : '', origins));
    // frame-ancestors decides; X-Frame-Options would forbid every framing page.
    res.removeHeader('X-Frame-Options');
    res.setHeader('Cache-Control', 'no-cache');
    res.type('html').send(widgetPage);
  });

  router.get('/assets/socket.io.min.js', (_req: Request, res: Response) => {
    res.sendFile(client.path, { maxAge: '365d', immutable: true, dotfiles: 'deny' });
  });

  router.use(
    '/assets',
    express.static(PUBLIC_DIR, {
      index: false,
      dotfiles: 'ignore',
      redirect: false,
      // Not fingerprinted: always revalidated (ETag), so a deploy is picked up at once.
      setHeaders: (res) => res.setHeader('Cache-Control', 'no-cache'),
    }),
  );

  /**
   * A short-lived access token for the Socket.IO handshake, for the browser whose session is the HttpOnly cookie.
   * The page keeps it in memory only and asks again before every (re)connect. Bearer callers already hold one.
   * The CSRF header is required too, so no other origin can mint one even if the cookie were ever sent along.
   */
  router.get('/auth/socket-token', authenticate(ctx), accountDuties(ctx), async (req: Request, res: Response) => {
    res.setHeader('Cache-Control', 'no-store');
    const auth = requireAuth(req);
    if (auth.via !== 'cookie') throw new ForbiddenError('cookie_session_required', 'Only a browser session may ask for a socket token');
    if (req.get(CSRF_HEADER) !== ctx.sessions.csrfToken(auth.sid)) throw new ForbiddenError('csrf_failed', 'Missing or wrong CSRF token');
    const token = await ctx.tokens.sign({ sub: auth.userId, sid: auth.sid, tid: auth.tenantId, roles: auth.roles });
    res.json({ token });
  });

  return router;
}
