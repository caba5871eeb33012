import { withTenant } from '../../shared/db/index.js';
import { openEmailChannel, type EmailChannel } from '../../shared/email/channel.js';
import type { Kernel } from '../../shared/kernel.js';
import { log } from '../../shared/log/index.js';
import type { EgressDeniedError } from '../../shared/net/egress.js';

interface BotChannelRow {
  email_channel_ciphertext: string | null;
  deleted_at: Date | null;
}

/** The bot's e-mail channel settings, or undefined when the bot or its channel is gone. */
export async function loadChannel(kernel: Kernel, tenantId: string, botId: string): Promise<EmailChannel | undefined> {
  const row = await withTenant(kernel.db, tenantId, (trx) => trx('bots').where({ id: botId }).first<BotChannelRow | undefined>('email_channel_ciphertext', 'deleted_at'));
  if (row === undefined || row.deleted_at !== null || row.email_channel_ciphertext === null) return undefined;
  return openEmailChannel(kernel.keys.columnRing, botId, row.email_channel_ciphertext);
}

/** A stored channel whose server the egress policy now refuses (its name may resolve elsewhere than when it was saved). */
export async function auditEgressRefusal(kernel: Kernel, tenantId: string, botId: string, error: EgressDeniedError): Promise<void> {
  log.warn('egress policy refused a mailbox server', { botId, protocol: error.protocol, reason: error.reason });
  await kernel.audit.record({
    type: 'security.violation',
    outcome: 'denied',
    tenantId,
    target: `bot:${botId}`,
    details: { violation: 'egress_denied', field: error.field, protocol: error.protocol, reason: error.reason, host: error.host },
  });
}
