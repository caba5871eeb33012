/**
 * One error hierarchy for the whole server. Each error carries a stable machine code, the HTTP status it maps to,
 * and whether its message is safe to show to a client (`expose`). Anything that is not an AppError is reported to
 * clients as a generic 500 `internal_error`.
 */
export class AppError extends Error {
  readonly code: string;
  readonly status: number;
  readonly expose: boolean;
  readonly field: string | undefined;

  constructor(code: string, message: string, options: { status?: number; expose?: boolean; field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options.status ?? 500;
    this.expose = options.expose ?? this.status < 500;
    this.field = options.field;
  }
}

/** Bad or missing configuration: the process ends with exit code 2 and one line naming the variable. */
export class ConfigError extends AppError {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super('invalid_config', `${variable}: ${message}`, { status: 500, expose: false });
    this.variable = variable;
  }
}

/** Decryption or authentication of ciphertext failed: tampered data, wrong key, wrong associated data. */
export class CryptoError extends AppError {
  constructor(code: 'decrypt_failed' | 'unknown_key' | 'malformed_envelope' | 'invalid_key', message: string) {
    super(code, message, { status: 500, expose: false });
  }
}

export class ValidationError extends AppError {
  constructor(message: string, field?: string, code = 'invalid_request') {
    super(code, message, { status: 400, expose: true, ...(field === undefined ? {} : { field }) });
  }
}

export class UnauthorizedError extends AppError {
  constructor(code = 'unauthorized', message = 'Authentication required') {
    super(code, message, { status: 401, expose: true });
  }
}

export class ForbiddenError extends AppError {
  constructor(code = 'forbidden', message = 'You may not do this') {
    super(code, message, { status: 403, expose: true });
  }
}

export class NotFoundError extends AppError {
  constructor(message = 'Not found') {
    super('not_found', message, { status: 404, expose: true });
  }
}

export class ConflictError extends AppError {
  constructor(code: string, message: string) {
    super(code, message, { status: 409, expose: true });
  }
}

/** A dependency (Redis, PostgreSQL, a peer) is not reachable right now: the client should retry after `retryAfterMs`. */
export class UnavailableError extends AppError {
  readonly retryAfterMs: number;
  constructor(message: string, cause?: unknown, retryAfterMs = 2000) {
    super('unavailable', message, { status: 503, expose: true, cause });
    this.retryAfterMs = retryAfterMs;
  }
}

/** Bad command-line usage: the CLI exits 2 with one line naming the argument. */
export class UsageError extends AppError {
  readonly argument: string;
  constructor(argument: string, message: string) {
    super('usage', message, { status: 400, expose: true });
    this.argument = argument;
  }
}
