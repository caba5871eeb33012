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
