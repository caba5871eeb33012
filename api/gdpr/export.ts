import type { Knex } from 'knex';
import { decryptEmail, rolesOf } from '../../shared/accounts/index.js';
import { listMessages, type MessageRole } from '../../shared/chat/index.js';
import { openString, type KeyRing } from '../../shared/crypto/index.js';
import { withTenant } from '../../shared/db/index.js';
import { UnauthorizedError } from '../../shared/errors.js';
import { log } from '../../shared/log/index.js';
import type { RequestAuth } from '../auth/authenticate.js';
import type { ApiContext } from '../context.js';
import { AUDIT_VIEW_COLUMNS, auditEventView, type AuditEventView, type AuditViewRow } from '../routes/audit.js';
import { nameAad } from '../../shared/files/aad.js';
import { knowledgeTextAad, knowledgeTitleAad } from '../../shared/knowledge/aad.js';

// Associated data of encrypted columns come from the pipelines that seal them, so the export always opens them.
export { knowledgeTextAad, knowledgeTitleAad } from '../../shared/knowledge/aad.js';

/** No conversation of one person comes near this; it only bounds the query. */
const MAX_MESSAGES_PER_CONVERSATION = 1_000_000;

export interface UserExport {
  exportedAt: string;
  account: {
    id: string;
    email: string;
    tenant: string;
    tenantId: string;
    roles: string[];
    mfa: boolean;
    oidc: { issuer: string; subject: string } | null;
    createdAt: string;
    updatedAt: string;
  };
  conversations: Array<{
    id: string;
    botId: string;
    channel: string;
    createdAt: string;
    messages: Array<{ messageId: string; role: MessageRole; text: string; createdAt: string }>;
  }>;
  /** The caller's own files (uploads): metadata here, the content through `download` (the caller's own file route). */
  files: Array<{ id: string; name: string | null; size: number; type: string; status: string; createdAt: string; download: string }>;
  knowledge: Array<{ id: string; botId: string; title: string | null; text: string | null; status: string; createdAt: string }>;
  auditEvents: AuditEventView[];
}

interface AccountRow {
  id: string;
  tenant_id: string;
  email_ciphertext: string;
  mfa_enabled: boolean;
  oidc_issuer: string | null;
  oidc_subject: string | null;
  erased_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

interface FileRow {
  id: string;
  name_ciphertext: string;
  content_type: string;
  size: string | number;
  status: string;
  created_at: Date;
}

interface KnowledgeRow {
  id: string;
  bot_id: string;
  title_ciphertext: string;
  text_ciphertext: string;
  status: string;
  created_at: Date;
}

/** Opens a column sealed by another pipeline; a value that does not open under the convention is reported as null. */
function openOptional(ring: KeyRing, sealed: string, aad: string, what: string): string | null {
  try {
    return openString(ring, sealed, aad);
  } catch {
    log.warn('export: an encrypted column could not be opened', { column: what });
    return null;
  }
}

async function tenantData(ctx: ApiContext, trx: Knex.Transaction, userId: string): Promise<Pick<UserExport, 'conversations' | 'files' | 'knowledge'>> {
  const ring = ctx.kernel.keys.columnRing;
  const conversationRows = await trx('conversations')
    .where({ user_id: userId })
    .orderBy([{ column: 'created_at' }, { column: 'id' }])
    .select<Array<{ id: string; bot_id: string; channel: string; created_at: Date }>>('id', 'bot_id', 'channel', 'created_at');
  const conversations: UserExport['conversations'] = [];
  for (const row of conversationRows) {
    const messages = await listMessages(trx, ring, row.id, { limit: MAX_MESSAGES_PER_CONVERSATION });
    conversations.push({
      id: row.id,
      botId: row.bot_id,
      channel: row.channel,
      createdAt: row.created_at.toISOString(),
      messages: messages.map(({ messageId, role, text, createdAt }) => ({ messageId, role, text, createdAt })),
    });
  }
  const fileRows = await trx('files')
    .where({ owner_id: userId })
    .orderBy([{ column: 'created_at' }, { column: 'id' }])
    .select<FileRow[]>('id', 'name_ciphertext', 'content_type', 'size', 'status', 'created_at');
  const knowledgeRows = await trx('knowledge_documents')
    .where({ owner_id: userId })
    .orderBy('created_at')
    .select<KnowledgeRow[]>('id', 'bot_id', 'title_ciphertext', 'text_ciphertext', 'status', 'created_at');
  return {
    conversations,
    files: fileRows.map((row) => ({
      id: row.id,
      name: openOptional(ring, row.name_ciphertext, nameAad(row.id), 'files.name'),
      size: Number(row.size),
      type: row.content_type,
      status: row.status,
      createdAt: row.created_at.toISOString(),
      download: `/api/files/${row.id}/content`,
    })),
    knowledge: knowledgeRows.map((row) => ({
      id: row.id,
      botId: row.bot_id,
      title: openOptional(ring, row.title_ciphertext, knowledgeTitleAad(row.id), 'knowledge_documents.title'),
      text: openOptional(ring, row.text_ciphertext, knowledgeTextAad(row.id), 'knowledge_documents.text'),
      status: row.status,
      createdAt: row.created_at.toISOString(),
    })),
  };
}

/**
 * Everything stored about the caller, decrypted (GDPR art. 15 and 20): the account, their conversations with every
 * message, their files' metadata (content through its download link), knowledge documents they own, and the audit
 * events in which they are the actor. Only rows tied to the caller's own id are read.
 */
export async function exportUserData(ctx: ApiContext, auth: RequestAuth): Promise<UserExport> {
  const { db, keys } = ctx.kernel;
  const account = await db('users')
    .where({ id: auth.userId })
    .first<AccountRow | undefined>('id', 'tenant_id', 'email_ciphertext', 'mfa_enabled', 'oidc_issuer', 'oidc_subject', 'erased_at', 'created_at', 'updated_at');
  if (account === undefined || account.erased_at !== null) throw new UnauthorizedError();
  const tenant = await db('tenants').where({ id: account.tenant_id }).first<{ name: string } | undefined>('name');
  const roles = await rolesOf(db, account.id, account.tenant_id);
  const data = await withTenant(db, account.tenant_id, (trx) => tenantData(ctx, trx, account.id));
  const auditRows = await db('audit_events').where({ actor: account.id }).orderBy('id').select<AuditViewRow[]>(AUDIT_VIEW_COLUMNS);
  return {
    exportedAt: new Date().toISOString(),
    account: {
      id: account.id,
      email: decryptEmail(keys, account),
      tenant: tenant?.name ?? '',
      tenantId: account.tenant_id,
      roles,
      mfa: account.mfa_enabled,
      oidc: account.oidc_issuer === null || account.oidc_subject === null ? null : { issuer: account.oidc_issuer, subject: account.oidc_subject },
      createdAt: account.created_at.toISOString(),
      updatedAt: account.updated_at.toISOString(),
    },
    ...data,
    auditEvents: auditRows.map(auditEventView),
  };
}
