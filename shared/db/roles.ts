/**
 * The least-privileged PostgreSQL roles, one per process family. They are NOLOGIN roles: a process logs in as the
 * migrating user (which is granted membership in each) and then works as its family's role via `SET ROLE`
 * (see `createDb({ role })`). Roles are cluster-wide, so several databases on one server share them.
 */
export const API_ROLE = 'botserver_api';
export const REPLY_ROLE = 'botserver_reply';
export const EMBED_ROLE = 'botserver_embed';
export const EMAIL_ROLE = 'botserver_email';
export const FILES_ROLE = 'botserver_files';
export const AUDIT_ROLE = 'botserver_audit';

export type ProcessFamily = 'api' | 'reply' | 'embed' | 'email' | 'files' | 'audit';

export const familyRole: Readonly<Record<ProcessFamily, string>> = Object.freeze({
  api: API_ROLE,
  reply: REPLY_ROLE,
  embed: EMBED_ROLE,
  email: EMAIL_ROLE,
  files: FILES_ROLE,
  audit: AUDIT_ROLE,
});

export const allRoles: readonly string[] = Object.freeze(Object.values(familyRole));
