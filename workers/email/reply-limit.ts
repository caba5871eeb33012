import { blindIndex, normaliseEmail } from '../../shared/crypto/index.js';
import { countRefusal } from '../../shared/email/stats.js';
import type { Kernel } from '../../shared/kernel.js';
import { log } from '../../shared/log/index.js';

export interface ReplyLimit {
  tenantId: string;
  botId: string;
  /** The channel's `maxRepliesPerSenderPerHour`. */
  limit: number;
}

export interface LimitedMail {
  /** The correspondent's address (only its blind index is kept). */
  sender: string;
  /** The inbound mail's Message-ID index: the same mail handled again counts once. */
  messageIndex: string;
}

const HOUR_MS = 3_600_000;

/**
 * A mail's place among its correspondent's mails of the hour (0-based), in arrival order: the sorted set's score is
 * the count before the mail joined, so places never tie; a mail already there keeps its place (ZADD NX).
 */
const PLACE_LUA = `
local added = redis.call('ZADD', KEYS[1], 'NX', redis.call('ZCARD', KEYS[1]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return { added, redis.call('ZRANK', KEYS[1], ARGV[1]) }`;

/**
 * The per-correspondent reply limit, for the new mails of a batch (one Redis round trip): at most `limit` mails of
 * one correspondent are answered per bot and clock hour. Each hour's mails of a correspondent are a sorted set in
 * arrival order, so a mail's place says whether it is within the limit, also when the same mail is handled again
 * after a crash (it keeps its first place). A refused mail is counted in `/metrics`
 * (`botserver_email_replies_refused_total{reason="reply_limit"}`); the first refusal per correspondent and hour is
 * audited (`security.violation`, `email_reply_limit`, the correspondent as a blind index, never the address).
 */
export async function withinReplyLimits(kernel: Kernel, limit: ReplyLimit, mails: readonly LimitedMail[]): Promise<boolean[]> {
  if (mails.length === 0) return [];
  const hour = Math.floor(Date.now() / HOUR_MS);
  const correspondents = mails.map((mail) => blindIndex(kernel.keys.blindIndexKey, 'email.rate', `${limit.botId}\0${normaliseEmail(mail.sender)}`));
  const transaction = kernel.redis.multi();
  mails.forEach((mail, index) => {
    transaction.eval(PLACE_LUA, 1, `${kernel.queues.prefix}:email:rate:${correspondents[index] ?? ''}:${hour}`, mail.messageIndex, String(HOUR_MS));
  });
  const results = (await transaction.exec()) ?? [];
  const verdicts: boolean[] = [];
  for (const [index, correspondent] of correspondents.entries()) {
    const [added, rank] = (results[index]?.[1] as [number, number] | undefined) ?? [0, 0];
    verdicts.push(rank < limit.limit);
    if (rank < limit.limit || added !== 1) continue;
    await countRefusal(kernel.redis, kernel.queues.prefix, 'reply_limit');
    log.info('inbound mail not answered: reply limit of the correspondent reached', { botId: limit.botId, limit: limit.limit });
    if (rank === limit.limit) {
      await kernel.audit.record({
        type: 'security.violation',
        outcome: 'denied',
        tenantId: limit.tenantId,
        target: `bot:${limit.botId}`,
        details: { violation: 'email_reply_limit', correspondent, limit: limit.limit },
      });
    }
  }
  return verdicts;
}
