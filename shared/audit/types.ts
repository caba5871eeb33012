/** CONTRACT §3: the audit event types; a query prefix such as `auth.` matches every type below it. */
export const AUDIT_EVENT_TYPES = [
  'auth.login.success',
  'auth.login.failure',
  'auth.lockout',
  'auth.logout',
  'auth.token.reuse',
  'auth.mfa',
  'authz.denied',
  'data.read',
  'data.write',
  'data.export',
  'data.erase',
  'config.change',
  'admin.action',
  'api.call',
  'security.violation',
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];
export type AuditOutcome = 'success' | 'failure' | 'denied';

/** What a caller says about an event; id and time are added when it is recorded. Details never hold secrets. */
export interface AuditEventInput {
  type: AuditEventType;
  outcome: AuditOutcome;
  tenantId?: string | null;
  actor?: string | null;
  target?: string | null;
  ip?: string | null;
  requestId?: string | null;
  details?: Record<string, unknown>;
}
