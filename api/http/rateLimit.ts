import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Redis } from 'ioredis';
import { AppError } from '../../shared/errors.js';

export interface Bucket {
  name: string;
  points: number;
  durationSeconds: number;
}

/**
 * A budget counted in Redis, so every API process shares it. While Redis is unreachable an in-memory limiter with
 * the same budget stands in (per process), so limits never simply switch off.
 */
export class Limiter {
  readonly bucket: Bucket;
  private readonly limiter: RateLimiterRedis;

  constructor(redis: Redis, bucket: Bucket) {
    this.bucket = bucket;
    this.limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `botserver:rl:${bucket.name}`,
      points: bucket.points,
      duration: bucket.durationSeconds,
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory({ points: bucket.points, duration: bucket.durationSeconds }),
    });
  }

  /** Spends one point for the key; answers 429 `rate_limited` with Retry-After and RateLimit-* headers when spent. */
  async consume(key: string, res: Response): Promise<void> {
    try {
      const result = await this.limiter.consume(key);
      this.setHeaders(res, result);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      this.setHeaders(res, rejection);
      const retryAfter = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
      res.setHeader('Retry-After', String(retryAfter));
      throw new AppError('rate_limited', 'Too many requests; try again later', { status: 429 });
    }
  }

  /** Forgets the key's counter (an erased account leaves no key naming it behind). */
  async forget(key: string): Promise<void> {
    await this.limiter.delete(key);
  }

  private setHeaders(res: Response, result: RateLimiterRes): void {
    res.setHeader('RateLimit-Limit', String(this.bucket.points));
    res.setHeader('RateLimit-Remaining', String(Math.max(0, result.remainingPoints)));
    res.setHeader('RateLimit-Reset', String(Math.max(0, Math.ceil(result.msBeforeNext / 1000))));
  }
}

export function limitBy(limiter: Limiter, keyOf: (req: Request) => string | undefined): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const key = keyOf(req);
    if (key === undefined) return next();
    limiter.consume(key, res).then(() => next(), next);
  };
}
