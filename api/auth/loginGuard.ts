import type { Redis } from 'ioredis';

/** Alert thresholds of the seed: the warning comes with the lock; the critical one also blocks the source IP. */
export const CRITICAL_FAILURES = 10;

export type GuardState = { blocked: false } | { blocked: true; reason: 'account_locked' | 'ip_blocked'; retryAfter: number };

export interface FailureOutcome {
  failures: number;
  /** This failure locked the account. */
  lockedNow: boolean;
  /** This failure reached the critical threshold; the source IP is now blocked. */
  criticalNow: boolean;
  retryAfter: number;
}

const PREFIX = 'botserver:login:';

/**
 * Counts failed logins per account key (the e-mail's blind index, so unknown addresses behave exactly like known
 * ones) in Redis, so every API process agrees on lockouts.
 */
export class LoginGuard {
  private readonly redis: Redis;
  private readonly maxAttempts: number;
  private readonly lockoutSeconds: number;
  /** The critical threshold never comes before the lock: at least CRITICAL_FAILURES, and twice the lock threshold. */
  private readonly criticalFailures: number;

  constructor(redis: Redis, maxAttempts: number, lockoutSeconds: number) {
    this.redis = redis;
    this.maxAttempts = maxAttempts;
    this.lockoutSeconds = lockoutSeconds;
    this.criticalFailures = Math.max(CRITICAL_FAILURES, 2 * maxAttempts);
  }

  async check(accountKey: string, ip: string): Promise<GuardState> {
    const [ipTtl, lockTtl] = await Promise.all([this.redis.ttl(`${PREFIX}ip-block:${ip}`), this.redis.ttl(`${PREFIX}lock:${accountKey}`)]);
    if (ipTtl > 0) return { blocked: true, reason: 'ip_blocked', retryAfter: ipTtl };
    if (lockTtl > 0) return { blocked: true, reason: 'account_locked', retryAfter: lockTtl };
    return { blocked: false };
  }

  /**
   * Records a failure of one account (attempts while locked count too) and applies the thresholds: the
   * max-attempts-th locks the account, the critical one blocks the IP that made it.
   */
  async recordFailure(accountKey: string, ip: string): Promise<FailureOutcome> {
    const failuresKey = `${PREFIX}failures:${accountKey}`;
    const results = await this.redis
      .multi()
      .incr(failuresKey)
      .expire(failuresKey, this.lockoutSeconds, 'NX')
      .exec();
    const failures = Number(results?.[0]?.[1] ?? 0);
    const lockedNow = failures === this.maxAttempts;
    if (failures >= this.maxAttempts) {
      // The lock is set (or kept) on every failure from the threshold on; its timer starts at the locking failure.
      await this.redis.set(`${PREFIX}lock:${accountKey}`, '1', 'EX', this.lockoutSeconds, 'NX');
    }
    const criticalNow = failures === this.criticalFailures;
    if (criticalNow) {
      await this.redis.set(`${PREFIX}ip-block:${ip}`, '1', 'EX', this.lockoutSeconds, 'NX');
    }
    const lockTtl = await this.redis.ttl(`${PREFIX}lock:${accountKey}`);
    return { failures, lockedNow, criticalNow, retryAfter: Math.max(lockTtl, 0) };
  }

  async reset(accountKey: string): Promise<void> {
    await this.redis.del(`${PREFIX}failures:${accountKey}`, `${PREFIX}lock:${accountKey}`);
  }
}
