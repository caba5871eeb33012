import type { Knex } from 'knex';
import type { QuarantineReason } from '../../shared/email/stats.js';

/** The most quarantined mails one listing shows (newest first). */
const LISTING_LIMIT = 200;

export interface QuarantinedMail {
  uidValidity: number;
  uid: number;
  reason: QuarantineReason;
  attempts: number;
  size: number;
  quarantinedAt: string;
}

interface QuarantineRow {
  uid_validity: string;
  uid: string;
  reason: QuarantineReason;
  attempts: number;
  size: string;
  created_at: Date;
}

/**
 * The bot's inbound mails the e-mail worker gave up on, newest first: where each is in the mailbox (UIDVALIDITY and
 * UID, to find it with any mail client), why and after how many attempts. Nothing of the mail's content is kept.
 * Call in the caller's tenant-scoped transaction.
 */
export async function listQuarantine(trx: Knex.Transaction, botId: string): Promise<QuarantinedMail[]> {
  const rows = await trx('email_quarantine')
    .where({ bot_id: botId })
    .orderBy('created_at', 'desc')
    .limit(LISTING_LIMIT)
    .select<QuarantineRow[]>('uid_validity', 'uid', 'reason', 'attempts', 'size', 'created_at');
  return rows.map((row) => ({
    uidValidity: Number(row.uid_validity),
    uid: Number(row.uid),
    reason: row.reason,
    attempts: row.attempts,
    size: Number(row.size),
    quarantinedAt: row.created_at.toISOString(),
  }));
}
