import { AppError } from '../../shared/errors.js';

export type ConnectionFailure = 'auth_failed' | 'unreachable' | 'tls_failed';

/** 400 `email_connection_failed`: the settings were not saved; `reason` tells which check failed. */
export class EmailConnectionError extends AppError {
  readonly reason: ConnectionFailure;
  readonly server: 'imap' | 'smtp';
  constructor(server: 'imap' | 'smtp', reason: ConnectionFailure, cause?: unknown) {
    const what = { auth_failed: 'the server refused the user name or password', unreachable: 'the server could not be reached', tls_failed: 'the TLS connection failed (certificate or protocol)' }[reason];
    super('email_connection_failed', `${server.toUpperCase()} connection test failed (${reason}): ${what}`, { status: 400, expose: true, field: `email.${server}`, cause });
    this.reason = reason;
    this.server = server;
  }
}

const TLS_CODES = /^(ERR_TLS|ERR_SSL|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_|EPROTO|HOSTNAME_MISMATCH|ERR_CERT)/;

/** Maps an imapflow or nodemailer failure onto a reason code (no message text from the server is kept). */
export function classifyConnectionError(error: unknown): ConnectionFailure {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current instanceof Error && !seen.has(current)) {
    seen.add(current);
    const record = current as Error & { code?: unknown; authenticationFailed?: unknown; responseCode?: unknown };
    const code = typeof record.code === 'string' ? record.code : '';
    if (record.authenticationFailed === true || code === 'EAUTH' || record.responseCode === 535) return 'auth_failed';
    if (TLS_CODES.test(code) || /certificate|ssl|tls/i.test(current.message)) return 'tls_failed';
    if (/AUTHENTICATIONFAILED|authentication failed|Invalid credentials|Invalid username or password/i.test(current.message)) return 'auth_failed';
    current = record.cause;
  }
  return 'unreachable';
}
