import type { Knex } from 'knex';
import { ValidationError } from '../errors.js';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID_PATTERN.test(value);
}

/**
 * Runs `fn` in a transaction scoped to one tenant: row-level security shows and accepts only that tenant's rows.
 * The scope is transaction-local (`set_config(..., true)`), so it can never leak to the next user of a pooled
 * connection. The id is validated before any query is sent.
 */
export async function withTenant<T>(knex: Knex, tenantId: string, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  if (!isUuid(tenantId)) throw new ValidationError('Tenant id must be a UUID', 'tenantId');
  return knex.transaction(async (trx) => {
    await trx.raw("SELECT set_config('app.tenant_id', ?, true)", [tenantId.toLowerCase()]);
    return fn(trx);
  });
}

/**
 * Like withTenant, with the transaction's first statement sent together with the tenant scope, in one round trip.
 * `fn` receives that statement's rows. The statement's values must be inline-safe (see tenantScoped).
 */
export async function withTenantFrom<R, T>(knex: Knex, tenantId: string, first: Knex.QueryBuilder | Knex.Raw, fn: (trx: Knex.Transaction, rows: R[]) => Promise<T>): Promise<T> {
  const text = tenantScoped(tenantId, first);
  return knex.transaction(async (trx) => fn(trx, lastRows<R>(await trx.raw(text))));
}

/**
 * One statement in the tenant's scope, in one round trip and without BEGIN or COMMIT: the scope and the statement
 * go as one simple-protocol query, which PostgreSQL runs as one implicit transaction (so the transaction-local
 * scope ends with it). For a single statement that needs no other in its transaction.
 */
export async function inTenant<R>(knex: Knex, tenantId: string, statement: Knex.QueryBuilder | Knex.Raw): Promise<R[]> {
  return lastRows<R>(await knex.raw(tenantScoped(tenantId, statement)));
}

/** tenantScopeValue's SQL, for a statement written as fixed text: bind the tenant id, checked and in lower case, to its `?`. */
export const TENANT_SCOPE_VALUE_SQL = "set_config('app.tenant_id', ?, true)::uuid";

/**
 * The `tenant_id` value of a row INSERTed outside any transaction, which also scopes that INSERT to the tenant:
 * `set_config('app.tenant_id', <tenant>, true)::uuid`. The row's values are computed before PostgreSQL checks the
 * row against row-level security and before its triggers run, so both see the scope; being transaction-local, the
 * scope ends with the statement's own (implicit) transaction. One statement, one round trip, every value bound. It
 * fails closed: a row the scope did not cover would be refused (no tenant matches NULL), never written elsewhere.
 */
export function tenantScopeValue(knex: Knex, tenantId: string): Knex.Raw {
  if (!isUuid(tenantId)) throw new ValidationError('Tenant id must be a UUID', 'tenantId');
  return knex.raw(TENANT_SCOPE_VALUE_SQL, [tenantId.toLowerCase()]);
}

/**
 * A value written into SQL text as it is, with nothing to escape: ids, sealed (encrypted) values, timestamps, enum
 * words and numbers can only hold these characters. Free text (anything a client typed) never qualifies: it goes
 * as a bound parameter through withTenant instead.
 */
const INLINE_SAFE_TEXT = /^[A-Za-z0-9_.:+-]*$/;

function inlineLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  // An array's type comes from the statement's own cast (`?::uuid[]`), which an empty ARRAY[] needs anyway.
  if (Array.isArray(value)) return `ARRAY[${value.map(inlineLiteral).join(',')}]`;
  if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (value instanceof Date && Number.isFinite(value.getTime())) return `'${value.toISOString()}'`;
  if (typeof value === 'string' && INLINE_SAFE_TEXT.test(value)) return `'${value}'`;
  throw new TypeError('a value of a tenant-scoped statement is not inline-safe; bind it through withTenant instead');
}

/** The statement's text with its values inlined (see INLINE_SAFE_TEXT), to be sent after another in one simple-protocol query. */
export function inlined(statement: Knex.QueryBuilder | Knex.Raw): string {
  const { sql, bindings } = statement.toSQL().toNative();
  return sql.replace(/\$(\d+)/g, (_, position: string) => inlineLiteral(bindings[Number(position) - 1]));
}

/** `SELECT set_config('app.tenant_id', '<tenant>', true); <statement>` with its values inlined (see INLINE_SAFE_TEXT). */
export function tenantScoped(tenantId: string, statement: Knex.QueryBuilder | Knex.Raw): string {
  if (!isUuid(tenantId)) throw new ValidationError('Tenant id must be a UUID', 'tenantId');
  return `SELECT set_config('app.tenant_id', '${tenantId.toLowerCase()}', true); ${inlined(statement)}`;
}

/** The rows of the last statement of a multi-statement (simple-protocol) query. */
export function lastRows<R>(results: unknown): R[] {
  const list = Array.isArray(results) ? (results as Array<{ rows: R[] }>) : [results as { rows: R[] }];
  return list.at(-1)?.rows ?? [];
}
