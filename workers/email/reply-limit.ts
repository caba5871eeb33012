import { blindIndex, normaliseEmail } from '../../shared/crypto/index.js';
import { countRefusal } from '../../shared/email/stats.js';
import type { Kernel } from '../../shared/kernel.js';
import { log } from '../../shared/log/index.js';

export interface ReplyLimitCheck {
  tenantId: string;
  botId: string;
  /** The channel's `maxRepliesPerSenderPerHour`. */
  limit: number;
  /** The correspondent's address (only its blind index is kept). */
  sender: string;
  /** The inbound mail's Message-ID index: the same mail handled again counts once. */
  messageIndex: string;
}

const HOUR_MS = 3_600_000;

/**
 * The per-correspondent reply limit: at most `limit` mails of one correspondent are answered per bot and clock hour
 * (a fixed window in Redis; a mail handled twice after a crash counts once). A refused
 * mail is counted in `/metrics` (`botserver_email_replies_refused_total{reason="reply_limit"}`); the first refusal
 * per correspondent and hour is audited (`security.violation`, `email_reply_limit`, the correspondent as a blind
 * index, never the address).
 */
export async function withinReplyLimit(kernel: Kernel, check: ReplyLimitCheck): Promise<boolean> {
  const correspondent = blindIndex(kernel.keys.blindIndexKey, 'email.rate', `${check.botId}\0${normaliseEmail(check.sender)}`);
  const key = `${kernel.queues.prefix}:email:rate:${correspondent}:${Math.floor(Date.now() / HOUR_MS)}`;
  // A sorted set of the hour's mails by arrival: a mail's rank says whether it is within the limit, also when the
  // same mail is handled again after a crash (ZADD NX keeps its first place).
  const results = await kernel.redis.multi().zadd(key, 'NX', Date.now(), check.messageIndex).zrank(key, check.messageIndex).pexpire(key, HOUR_MS).exec();
  const added = Number(results?.[0]?.[1] ?? 0) === 1;
  const rank = Number(results?.[1]?.[1] ?? 0);
  if (rank < check.limit) return true;
  if (added) {
    await countRefusal(kernel.redis, kernel.queues.prefix, 'reply_limit');
    log.info('inbound mail not answered: reply limit of the correspondent reached', { botId: check.botId, limit: check.limit });
    if (rank === check.limit) {
      await kernel.audit.record({
        type: 'security.violation',
        outcome: 'denied',
        tenantId: check.tenantId,
        target: `bot:${check.botId}`,
        details: { violation: 'email_reply_limit', correspondent, limit: check.limit },
      });
    }
  }
  return false;
}
