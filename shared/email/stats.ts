import type { Redis } from 'ioredis';

/**
 * Counters the e-mail workers keep in Redis (one hash per queue prefix) so that any API process can show them in
 * `/metrics`, whichever worker process counted: quarantined mails by reason, replies refused by reason.
 */
export const QUARANTINE_REASONS = ['too_large', 'failed', 'crashed'] as const;
export type QuarantineReason = (typeof QUARANTINE_REASONS)[number];
export const REFUSAL_REASONS = ['reply_limit'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

const statsKey = (prefix: string): string => `${prefix}:email:stats`;

export async function countQuarantined(redis: Redis, prefix: string, reason: QuarantineReason): Promise<void> {
  await redis.hincrby(statsKey(prefix), `quarantined:${reason}`, 1);
}

export async function countRefusal(redis: Redis, prefix: string, reason: RefusalReason): Promise<void> {
  await redis.hincrby(statsKey(prefix), `refused:${reason}`, 1);
}

export interface EmailStats {
  quarantined: Record<QuarantineReason, number>;
  refused: Record<RefusalReason, number>;
}

export async function readEmailStats(redis: Redis, prefix: string): Promise<EmailStats> {
  const values = await redis.hgetall(statsKey(prefix));
  const count = (field: string): number => Number(values[field] ?? 0) || 0;
  return {
    quarantined: Object.fromEntries(QUARANTINE_REASONS.map((reason) => [reason, count(`quarantined:${reason}`)])) as Record<QuarantineReason, number>,
    refused: Object.fromEntries(REFUSAL_REASONS.map((reason) => [reason, count(`refused:${reason}`)])) as Record<RefusalReason, number>,
  };
}
