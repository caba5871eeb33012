import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router, type Request, type Response } from 'express';
import { ForbiddenError } from '../../shared/errors.js';
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

/** The page, read once; the socket.io URL carries the client's version so its long cache never serves a stale copy. */
function loadPage(socketIoVersion: string): string {
  return readFileSync(join(PUBLIC_DIR, 'index.html'), 'utf8').replaceAll('__SOCKET_IO_VERSION__', encodeURIComponent(socketIoVersion));
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
  const page = loadPage(client.version);

  router.get('/', (_req: Request, res: Response) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.type('html').send(page);
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
