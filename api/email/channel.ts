import type { Request } from 'express';
import type { Knex } from 'knex';
import { verifyImap, verifySmtp, type MailboxPosition } from '../../adapters/mail/index.js';
import { emailAddressIndex, sealEmailChannel, type EmailChannel } from '../../shared/email/channel.js';
import { ConflictError } from '../../shared/errors.js';
import { EgressDeniedError } from '../../shared/net/egress.js';
import type { ApiContext } from '../context.js';

export interface EmailColumns {
  email_channel_ciphertext: string | null;
  email_address_index: string | null;
}

/** The INBOX position found by the connection test, kept until the bot row exists (see saveMailboxPosition). */
const positions = new WeakMap<EmailColumns, MailboxPosition>();

/** How long each connection test may take before it counts as `unreachable`. */
const TEST_TIMEOUT_MS = 5000;

/**
 * The bot columns for an `email` field of POST/PATCH /api/bots: 409 `feature_disabled` without the `email`
 * feature; 400 `egress_denied` naming the field when the egress policy refuses a server (no socket is opened, the
 * refusal is counted and audited); otherwise IMAP login and SMTP verify must succeed (400
 * `email_connection_failed` with a reason), then the settings are sealed, bound to the bot id. `null` removes the
 * channel.
 */
export async function emailChannelColumns(ctx: ApiContext, req: Request, botId: string, email: EmailChannel | null): Promise<EmailColumns> {
  if (!ctx.kernel.config.features.has('email')) throw new ConflictError('feature_disabled', 'The email feature is not enabled on this server');
  if (email === null) return { email_channel_ciphertext: null, email_address_index: null };
  const { egress } = ctx.kernel;
  let position: MailboxPosition;
  try {
    position = await verifyImap(email.imap, egress, TEST_TIMEOUT_MS);
    await verifySmtp(email.smtp, egress, TEST_TIMEOUT_MS);
  } catch (error) {
    if (error instanceof EgressDeniedError) await recordEgressRefusal(ctx, req, botId, error);
    throw error;
  }
  const columns = {
    email_channel_ciphertext: sealEmailChannel(ctx.kernel.keys.columnRing, botId, email),
    email_address_index: emailAddressIndex(ctx.kernel.keys.blindIndexKey, email.address),
  };
  positions.set(columns, position);
  return columns;
}

/**
 * Records where the mailbox stood when the channel was saved (in the bot's transaction), so the e-mail worker
 * answers mail that arrives from then on and not the mailbox's history. Does nothing for a removed channel.
 */
export async function saveMailboxPosition(trx: Knex.Transaction, bot: { id: string; tenant_id: string }, columns: EmailColumns | Record<string, never>): Promise<void> {
  const position = positions.get(columns as EmailColumns);
  if (position === undefined) return;
  await trx('email_mailboxes')
    .insert({ bot_id: bot.id, tenant_id: bot.tenant_id, uid_validity: position.uidValidity, last_uid: position.lastUid })
    .onConflict('bot_id')
    .merge({ uid_validity: position.uidValidity, last_uid: position.lastUid, updated_at: trx.fn.now() });
}

/** What the API shows of a channel: that one is configured, never its settings. */
export function presentEmailChannel(ciphertext: string | null | undefined): { configured: true } | null {
  return ciphertext === null || ciphertext === undefined ? null : { configured: true };
}

/** A refused destination: counted in /metrics and audited as `security.violation` (the host as typed, no credentials). */
async function recordEgressRefusal(ctx: ApiContext, req: Request, botId: string, error: EgressDeniedError): Promise<void> {
  ctx.metrics.egressDenied.inc({ protocol: error.protocol, reason: error.reason });
  await ctx.audit(req, {
    type: 'security.violation',
    outcome: 'denied',
    target: `bot:${botId}`,
    details: { violation: 'egress_denied', field: error.field, protocol: error.protocol, reason: error.reason, host: error.host },
  });
}
