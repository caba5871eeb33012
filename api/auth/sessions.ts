import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { hmacHex, randomToken, timingSafeEqualHex } from '../../shared/crypto/index.js';

export interface Session {
  sid: string;
  userId: string;
  tenantId: string;
  roles: string[];
  mustChangePassword: boolean;
  mfaEnabled: boolean;
  /** HMAC of the browser cookie's secret part, when the session was opened with a cookie. */
  cookieHash: string | undefined;
  createdAt: number;
}

/** A session as JSON in Redis (an undefined cookieHash is left out). */
const storedSessionSchema = z.object({
  sid: z.string(),
  userId: z.string(),
  tenantId: z.string(),
  roles: z.array(z.string()),
  mustChangePassword: z.boolean(),
  mfaEnabled: z.boolean(),
  cookieHash: z.string().optional(),
  createdAt: z.number(),
});

/** The stored session, or undefined for a value that is not one (it is then treated as ended). */
function readSession(raw: string): Session | undefined {
  const parsed = storedSessionSchema.safeParse(JSON.parse(raw));
  return parsed.success ? { ...parsed.data, cookieHash: parsed.data.cookieHash } : undefined;
}

export type RefreshOutcome = { status: 'ok'; sid: string; userId: string } | { status: 'reused'; sid: string; userId: string } | { status: 'unknown' };

const PREFIX = 'botserver:';
const sessionKey = (sid: string): string => `${PREFIX}session:${sid}`;
const userSessionsKey = (userId: string): string => `${PREFIX}user-sessions:${userId}`;
const refreshKey = (hash: string): string => `${PREFIX}refresh:${hash}`;
const userRefreshKey = (userId: string): string => `${PREFIX}user-refresh:${userId}`;

/** Marks an active refresh token spent in one step; reports reuse of a spent one. */
const SPEND_REFRESH = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'unknown'} end
local sid = redis.call('HGET', KEYS[1], 'sid')
local uid = redis.call('HGET', KEYS[1], 'uid')
if state == 'spent' then return {'reused', sid, uid} end
redis.call('HSET', KEYS[1], 'state', 'spent')
return {'ok', sid, uid}
`;

/**
 * Sessions (UUID v4) live in Redis with an idle timeout, so every API process sees a logout at once. Refresh
 * tokens are 256 random bits stored only as HMAC-SHA256; each belongs to its session, which is its family.
 */
export class SessionStore {
  private readonly redis: Redis;
  private readonly idleSeconds: number;
  private readonly hmacKey: Buffer;
  private readonly onEnded: (sids: string[]) => void;

  /** `onEnded` learns of every session that a revocation ends (its sockets are then disconnected at once). */
  constructor(redis: Redis, idleSeconds: number, hmacKey: Buffer, onEnded: (sids: string[]) => void = () => undefined) {
    this.redis = redis;
    this.idleSeconds = idleSeconds;
    this.hmacKey = hmacKey;
    this.onEnded = onEnded;
  }

  async create(input: Omit<Session, 'sid' | 'createdAt' | 'cookieHash'>, withCookie: boolean): Promise<{ session: Session; cookieSecret: string | undefined }> {
    const sid = randomUUID();
    const cookieSecret = withCookie ? randomToken(32) : undefined;
    const session: Session = { ...input, sid, createdAt: Date.now(), cookieHash: cookieSecret === undefined ? undefined : this.hash('cookie', cookieSecret) };
    await this.redis
      .multi()
      .set(sessionKey(sid), JSON.stringify(session), 'EX', this.idleSeconds)
      .sadd(userSessionsKey(input.userId), sid)
      .expire(userSessionsKey(input.userId), this.idleSeconds * 24)
      .exec();
    return { session, cookieSecret };
  }

  /** The live session, with its idle timer restarted; undefined once it ended or timed out. */
  async touch(sid: string): Promise<Session | undefined> {
    const raw = await this.redis.getex(sessionKey(sid), 'EX', this.idleSeconds);
    const session = raw === null ? undefined : readSession(raw);
    if (session === undefined) return undefined;
    // The user's session index must outlive every live session (a session in constant use has no end), or
    // revokeAll (logout everywhere, password change) would miss this one once the index expired.
    const index = userSessionsKey(session.userId);
    await this.redis.multi().sadd(index, sid).expire(index, this.idleSeconds * 24).exec();
    return session;
  }

  async update(session: Session): Promise<void> {
    await this.redis.set(sessionKey(session.sid), JSON.stringify(session), 'EX', this.idleSeconds, 'XX');
  }

  cookieMatches(session: Session, cookieSecret: string): boolean {
    return session.cookieHash !== undefined && timingSafeEqualHex(session.cookieHash, this.hash('cookie', cookieSecret));
  }

  /** The CSRF token of a cookie session: bound to the session, unknown to other sites. */
  csrfToken(sid: string): string {
    return this.hash('csrf', sid);
  }

  async revoke(sid: string): Promise<void> {
    const raw = await this.redis.getdel(sessionKey(sid));
    const session = raw === null ? undefined : readSession(raw);
    if (session !== undefined) await this.redis.srem(userSessionsKey(session.userId), sid);
    this.onEnded([sid]);
  }

  /** Ends every session of the user (all devices), optionally keeping one. */
  async revokeAll(userId: string, keepSid?: string): Promise<number> {
    const sids = (await this.redis.smembers(userSessionsKey(userId))).filter((sid) => sid !== keepSid);
    if (sids.length === 0) return 0;
    await this.redis.multi().del(...sids.map(sessionKey)).srem(userSessionsKey(userId), ...sids).exec();
    this.onEnded(sids);
    return sids.length;
  }

  async issueRefreshToken(sid: string, userId: string): Promise<string> {
    const token = randomToken(32);
    const hash = this.hash('refresh', token);
    const key = refreshKey(hash);
    const index = userRefreshKey(userId);
    // Spent tokens are kept as long as a token could live, so their reuse is recognised. The user's index of them
    // lets an account erasure delete them all.
    await this.redis
      .multi()
      .hset(key, { sid, uid: userId, state: 'active' })
      .expire(key, this.idleSeconds * 24)
      .sadd(index, hash)
      .expire(index, this.idleSeconds * 24)
      .exec();
    return token;
  }

  /** Account erasure: ends every session of the user and deletes every refresh token (active or spent) issued to them. */
  async forgetUser(userId: string): Promise<void> {
    await this.revokeAll(userId);
    const hashes = await this.redis.smembers(userRefreshKey(userId));
    const multi = this.redis.multi();
    if (hashes.length > 0) multi.del(...hashes.map(refreshKey));
    await multi.del(userRefreshKey(userId), userSessionsKey(userId)).exec();
  }

  async spendRefreshToken(token: string): Promise<RefreshOutcome> {
    const result = (await this.redis.eval(SPEND_REFRESH, 1, refreshKey(this.hash('refresh', token)))) as string[];
    const [status, sid, userId] = result;
    if ((status === 'ok' || status === 'reused') && sid !== undefined && userId !== undefined) return { status, sid, userId };
    return { status: 'unknown' };
  }

  private hash(purpose: string, value: string): string {
    return hmacHex(this.hmacKey, `${purpose}\0${value}`);
  }
}
