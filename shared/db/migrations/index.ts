import type { Knex } from 'knex';
import * as tenantsUsers from './001_tenants_users.js';
import * as botsConversationsMessages from './002_bots_conversations_messages.js';
import * as filesKnowledgeEmail from './003_files_knowledge_email.js';
import * as audit from './004_audit.js';
import * as rolesAndRls from './005_roles_and_rls.js';
import * as messageReplies from './006_message_replies.js';
import * as auditPseudonymise from './007_audit_pseudonymise.js';
import * as emailDedupe from './009_email_dedupe.js';
import * as filesPipeline from './010_files_pipeline.js';
import * as knowledgePipeline from './011_knowledge_pipeline.js';
import * as consoleHandoff from './012_console_handoff.js';
import * as auditKeysAndVerification from './013_audit_keys_and_verification.js';
import * as emailQuarantine from './014_email_quarantine.js';
import * as hotPathStatements from './015_hot_path_statements.js';
import * as messageConversationTenant from './016_message_conversation_tenant.js';
import * as validateMessageConversationTenant from './017_validate_message_conversation_tenant.js';

export interface NamedMigration {
  name: string;
  up: (knex: Knex) => Promise<void>;
  down: (knex: Knex) => Promise<void>;
}

/** Every migration, in order. Imported statically so tsx/ESM and bundlers need no file-system loader. */
export const migrations: readonly NamedMigration[] = [
  { name: '001_tenants_users', up: tenantsUsers.up, down: tenantsUsers.down },
  { name: '002_bots_conversations_messages', up: botsConversationsMessages.up, down: botsConversationsMessages.down },
  { name: '003_files_knowledge_email', up: filesKnowledgeEmail.up, down: filesKnowledgeEmail.down },
  { name: '004_audit', up: audit.up, down: audit.down },
  { name: '005_roles_and_rls', up: rolesAndRls.up, down: rolesAndRls.down },
  { name: '006_message_replies', up: messageReplies.up, down: messageReplies.down },
  { name: '007_audit_pseudonymise', up: auditPseudonymise.up, down: auditPseudonymise.down },
  { name: '009_email_dedupe', up: emailDedupe.up, down: emailDedupe.down },
  { name: '010_files_pipeline', up: filesPipeline.up, down: filesPipeline.down },
  { name: '011_knowledge_pipeline', up: knowledgePipeline.up, down: knowledgePipeline.down },
  { name: '012_console_handoff', up: consoleHandoff.up, down: consoleHandoff.down },
  { name: '013_audit_keys_and_verification', up: auditKeysAndVerification.up, down: auditKeysAndVerification.down },
  { name: '014_email_quarantine', up: emailQuarantine.up, down: emailQuarantine.down },
  { name: '015_hot_path_statements', up: hotPathStatements.up, down: hotPathStatements.down },
  { name: '016_message_conversation_tenant', up: messageConversationTenant.up, down: messageConversationTenant.down },
  { name: '017_validate_message_conversation_tenant', up: validateMessageConversationTenant.up, down: validateMessageConversationTenant.down },
];
