import { randomUUID } from 'node:crypto';
import { Router, type Request } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { botRulesSchema, findRule, MAX_MATCHED_MESSAGE_LENGTH } from '../../adapters/llm/rules.js';
import type { BotRule } from '../../adapters/llm/types.js';
import { llmSettingsSchema } from '../../adapters/llm/settings.js';
import { insertMessage } from '../../shared/chat/index.js';
import { emailChannelSchema } from '../../shared/email/channel.js';
import { isUuid, withTenant } from '../../shared/db/index.js';
import { NotFoundError } from '../../shared/errors.js';
import { requireAuth } from '../auth/authenticate.js';
import { hasRole, requireRole } from '../auth/rbac.js';
import type { ApiContext } from '../context.js';
import { emailChannelColumns, presentEmailChannel, saveMailboxPosition } from '../email/channel.js';
import { listQuarantine } from '../email/quarantine.js';
import { noFieldsSchema, parseInput } from '../http/validate.js';

/** An origin as browsers send it: scheme, host and optional port, nothing else (`https://shop.example.com`). */
export const webOriginSchema = z
  .string()
  .max(200)
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
    } catch {
      return false;
    }
  }, 'must be an origin such as https://shop.example.com (scheme, host and optional port; no path or trailing slash)');

/** The most origins one bot's widget may be embedded on. */
export const MAX_ALLOWED_ORIGINS = 20;

const botFields = {
  name: z.string().trim().min(1).max(100),
  public: z.boolean(),
  greeting: z.string().trim().max(2000).nullable(),
  rules: botRulesSchema,
  llm: llmSettingsSchema.nullable(),
  email: emailChannelSchema.nullable(),
  allowedOrigins: z.array(webOriginSchema).max(MAX_ALLOWED_ORIGINS),
};
export const createBotSchema = z.strictObject({
  ...botFields,
  public: botFields.public.default(false),
  greeting: botFields.greeting.optional(),
  rules: botFields.rules.default([]),
  llm: botFields.llm.optional(),
  email: botFields.email.optional(),
  allowedOrigins: botFields.allowedOrigins.default([]),
});
export const tryBotSchema = z.strictObject({ text: z.string().trim().min(1).max(MAX_MATCHED_MESSAGE_LENGTH) });
export const updateBotSchema = z.strictObject(botFields).partial();

interface BotRow {
  id: string;
  tenant_id: string;
  name: string;
  public: boolean;
  greeting: string | null;
  rules: BotRule[];
  llm: unknown;
  email_channel_ciphertext: string | null;
  allowed_origins: string[];
  created_at: Date;
  updated_at: Date;
}

function present(bot: BotRow, full: boolean): Record<string, unknown> {
  const summary = { id: bot.id, name: bot.name, public: bot.public, greeting: bot.greeting };
  return full ? { ...summary, rules: bot.rules, llm: bot.llm, email: presentEmailChannel(bot.email_channel_ciphertext), allowedOrigins: bot.allowed_origins, createdAt: bot.created_at.toISOString(), updatedAt: bot.updated_at.toISOString() } : summary;
}

function botId(req: Request): string {
  const id = req.params.id;
  if (!isUuid(id)) throw new NotFoundError('No such bot');
  return id;
}

async function findBot(trx: Knex.Transaction, id: string): Promise<BotRow> {
  const bot = await trx('bots').where({ id }).whereNull('deleted_at').first<BotRow | undefined>();
  if (bot === undefined) throw new NotFoundError('No such bot');
  return bot;
}

/** Starts a web conversation and stores the bot's greeting as its first message. */
async function startConversation(ctx: ApiContext, trx: Knex.Transaction, bot: BotRow, owner: { userId: string | null; guest: boolean }): Promise<string> {
  const [conversation] = await trx('conversations')
    .insert({ tenant_id: bot.tenant_id, bot_id: bot.id, user_id: owner.userId, guest: owner.guest, channel: 'web' })
    .returning<Array<{ id: string }>>('id');
  if (conversation === undefined) throw new Error('conversation not created');
  if (bot.greeting !== null && bot.greeting !== '') {
    await insertMessage(trx, ctx.kernel.keys.columnRing, { tenantId: bot.tenant_id, conversationId: conversation.id, role: 'bot', text: bot.greeting });
  }
  return conversation.id;
}

export function botRoutes(ctx: ApiContext): Router {
  const router = Router();
  const staff = requireRole(ctx, 'admin', 'operator');

  router.get('/api/bots', async (req, res) => {
    const auth = requireAuth(req);
    const bots = await withTenant(ctx.kernel.db, auth.tenantId, (trx) => trx('bots').whereNull('deleted_at').orderBy('created_at').select<BotRow[]>());
    res.json({ bots: bots.map((bot) => present(bot, hasRole(auth.roles, ['admin', 'operator']))) });
  });

  router.post('/api/bots', staff, async (req, res) => {
    const auth = requireAuth(req);
    const input = parseInput(createBotSchema, req.body);
    const id = randomUUID();
    const email = input.email === undefined ? {} : await emailChannelColumns(ctx, req, id, input.email);
    const bot = await withTenant(ctx.kernel.db, auth.tenantId, async (trx) => {
      const [row] = await trx('bots')
        .insert({
          id,
          ...email,
          tenant_id: auth.tenantId,
          name: input.name,
          public: input.public,
          greeting: input.greeting ?? null,
          rules: JSON.stringify(input.rules),
          llm: input.llm === undefined || input.llm === null ? null : JSON.stringify(input.llm),
          allowed_origins: input.allowedOrigins,
          created_by: auth.userId,
        })
        .returning<BotRow[]>('*');
      if (row === undefined) throw new Error('bot not created');
      await saveMailboxPosition(trx, row, email);
      return row;
    });
    await ctx.audit(req, { type: 'config.change', outcome: 'success', target: `bot:${bot.id}`, details: { change: 'bot_created' } });
    res.status(201).json(present(bot, true));
  });

  router.get('/api/bots/:id', staff, async (req, res) => {
    const auth = requireAuth(req);
    const bot = await withTenant(ctx.kernel.db, auth.tenantId, (trx) => findBot(trx, botId(req)));
    res.json(present(bot, true));
  });

  router.patch('/api/bots/:id', staff, async (req, res) => {
    const auth = requireAuth(req);
    const id = botId(req);
    const input = parseInput(updateBotSchema, req.body);
    if (input.email !== undefined) await withTenant(ctx.kernel.db, auth.tenantId, (trx) => findBot(trx, id));
    const email = input.email === undefined ? {} : await emailChannelColumns(ctx, req, id, input.email);
    const bot = await withTenant(ctx.kernel.db, auth.tenantId, async (trx) => {
      await findBot(trx, id);
      const changes: Record<string, unknown> = { updated_at: trx.fn.now(), ...email };
      if (input.name !== undefined) changes.name = input.name;
      if (input.public !== undefined) changes.public = input.public;
      if (input.greeting !== undefined) changes.greeting = input.greeting;
      if (input.rules !== undefined) changes.rules = JSON.stringify(input.rules);
      if (input.llm !== undefined) changes.llm = input.llm === null ? null : JSON.stringify(input.llm);
      if (input.allowedOrigins !== undefined) changes.allowed_origins = input.allowedOrigins;
      const [row] = await trx('bots').where({ id }).update(changes).returning<BotRow[]>('*');
      if (row === undefined) throw new NotFoundError('No such bot');
      await saveMailboxPosition(trx, row, email);
      return row;
    });
    await ctx.audit(req, { type: 'config.change', outcome: 'success', target: `bot:${id}`, details: { change: 'bot_updated', fields: Object.keys(input) } });
    res.json(present(bot, true));
  });

  router.delete('/api/bots/:id', staff, async (req, res) => {
    const auth = requireAuth(req);
    const id = botId(req);
    parseInput(noFieldsSchema, req.body);
    await withTenant(ctx.kernel.db, auth.tenantId, async (trx) => {
      await findBot(trx, id);
      await trx('bots').where({ id }).update({ deleted_at: trx.fn.now(), public: false, updated_at: trx.fn.now() });
    });
    await ctx.audit(req, { type: 'config.change', outcome: 'success', target: `bot:${id}`, details: { change: 'bot_deleted' } });
    res.status(204).end();
  });

  /** What the bot's rules answer to a text, without a conversation: the console's "try it" box. */
  router.post('/api/bots/:id/try', staff, async (req, res) => {
    const auth = requireAuth(req);
    const id = botId(req);
    const input = parseInput(tryBotSchema, req.body);
    const bot = await withTenant(ctx.kernel.db, auth.tenantId, (trx) => findBot(trx, id));
    const matched = findRule(bot.rules, input.text);
    res.json({ reply: matched?.rule.reply ?? null, rule: matched?.index ?? null, handoff: matched?.rule.handoff === true });
  });

  /** Inbound mails of the bot's e-mail channel that were given up on (README, E-mail bots). */
  router.get('/api/bots/:id/email/quarantine', staff, async (req, res) => {
    const auth = requireAuth(req);
    const id = botId(req);
    const mails = await withTenant(ctx.kernel.db, auth.tenantId, async (trx) => {
      await findBot(trx, id);
      return listQuarantine(trx, id);
    });
    res.json({ mails });
  });

  router.post('/api/bots/:id/conversations', async (req, res) => {
    const auth = requireAuth(req);
    const id = botId(req);
    parseInput(noFieldsSchema, req.body);
    const conversationId = await withTenant(ctx.kernel.db, auth.tenantId, async (trx) => startConversation(ctx, trx, await findBot(trx, id), { userId: auth.userId, guest: false }));
    res.status(201).json({ id: conversationId });
  });

  /** A public bot's visitor gets a conversation and a token for it alone. */
  router.post('/api/bots/:id/guest-token', async (req, res) => {
    const id = botId(req);
    parseInput(noFieldsSchema, req.body);
    const tenant = await ctx.kernel.db.raw<{ rows: Array<{ tenant: string | null }> }>('select public_bot_tenant(?) as tenant', [id]);
    const tenantId = tenant.rows[0]?.tenant;
    if (tenantId === null || tenantId === undefined) throw new NotFoundError('No such bot');
    const conversationId = await withTenant(ctx.kernel.db, tenantId, async (trx) => startConversation(ctx, trx, await findBot(trx, id), { userId: null, guest: true }));
    const token = await ctx.tokens.signGuest({ tid: tenantId, bid: id, cid: conversationId });
    res.json({ token, conversationId });
  });

  return router;
}
