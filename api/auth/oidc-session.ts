import { RedisStore } from 'connect-redis';
import type { Request, RequestHandler, Response } from 'express';
import session from 'express-session';
import type { Redis } from 'ioredis';
import { hmacHex } from '../../shared/crypto/index.js';
import type { Kernel } from '../../shared/kernel.js';

export const OIDC_FLOW_COOKIE = 'botserver_oidc_flow';
export const OIDC_FLOW_PREFIX = 'botserver:oidc-flow:';
/** The flow cookie is sent only to the two /auth/oidc routes. */
export const OIDC_FLOW_PATH = '/auth/oidc';
const FLOW_MAX_AGE_MS = 10 * 60 * 1000;

/**
 * The small part of the node-redis client API that connect-redis 9 calls, over the kernel's ioredis connection
 * (connect-redis 9 speaks node-redis; this keeps one Redis client library in the process).
 */
class IoredisSessionClient {
  private readonly redis: Redis;

  constructor(redis: Redis) {
    this.redis = redis;
  }

  get(key: string): Promise<string | null> {
    return this.redis.get(key);
  }

  async set(key: string, value: string, options?: { expiration?: { type: 'EX'; value: number } }): Promise<void> {
    if (options?.expiration === undefined) await this.redis.set(key, value);
    else await this.redis.set(key, value, 'EX', options.expiration.value);
  }

  expire(key: string, seconds: number): Promise<number> {
    return this.redis.expire(key, seconds);
  }

  del(keys: string[] | string): Promise<number> {
    return this.redis.del(...(Array.isArray(keys) ? keys : [keys]));
  }

  mGet(keys: string[]): Promise<Array<string | null>> {
    return this.redis.mget(...keys);
  }

  async *scanIterator(options: { MATCH: string; COUNT: number }): AsyncGenerator<string[]> {
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', options.MATCH, 'COUNT', options.COUNT);
      cursor = next;
      if (keys.length > 0) yield keys;
    } while (cursor !== '0');
  }
}

function cookieSecure(kernel: Kernel): boolean {
  return kernel.config.tls !== undefined || kernel.config.production;
}

/**
 * The short-lived server-side session that carries one OIDC login's PKCE verifier, state and nonce from
 * /auth/oidc/login to /auth/oidc/callback. Used on those two routes only. Its cookie is HttpOnly and
 * SameSite=Lax: the callback arrives as a cross-site top-level redirect from the provider, which a Strict cookie
 * would not accompany.
 */
export function oidcFlowSession(kernel: Kernel): RequestHandler {
  return session({
    name: OIDC_FLOW_COOKIE,
    secret: hmacHex(kernel.keys.oidcFlowKey, 'oidc-flow-cookie'),
    store: new RedisStore({ client: new IoredisSessionClient(kernel.redis), prefix: OIDC_FLOW_PREFIX, disableTouch: true }),
    resave: false,
    saveUninitialized: false,
    rolling: false,
    unset: 'destroy',
    cookie: { path: OIDC_FLOW_PATH, httpOnly: true, sameSite: 'lax', secure: cookieSecure(kernel), maxAge: FLOW_MAX_AGE_MS },
  });
}

/** Starts a fresh flow session (a new id; any earlier flow of this browser is dropped). */
export function regenerateFlowSession(req: Request): Promise<void> {
  return new Promise((resolve, reject) => {
    req.session.regenerate((error: unknown) => (error === undefined || error === null ? resolve() : reject(toError(error))));
  });
}

/** Ends the flow: its data is deleted from Redis and the browser is told to forget the cookie. Never throws. */
export async function endFlowSession(kernel: Kernel, req: Request, res: Response): Promise<void> {
  await new Promise<void>((resolve) => {
    if (typeof req.session?.destroy !== 'function') {
      resolve();
      return;
    }
    req.session.destroy(() => resolve());
  });
  res.clearCookie(OIDC_FLOW_COOKIE, { path: OIDC_FLOW_PATH, httpOnly: true, sameSite: 'lax', secure: cookieSecure(kernel) });
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
