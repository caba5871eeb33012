import type { Knex } from 'knex';
import { hmacHex, timingSafeEqualHex } from '../crypto/index.js';
import type { AuditEventPayload } from '../queue/index.js';

/** The hash the first row chains to. */
export const GENESIS_HASH = '0'.repeat(64);
/** One advisory lock serialises appends, so any number of writers produce one linear chain. */
const CHAIN_LOCK_ID = 0x6275_6469; // "budi"
const PSEUDONYM_PREFIX = 'pseudo:';

export function isPseudonym(value: string): boolean {
  return value.startsWith(PSEUDONYM_PREFIX);
}

/** A keyed, stable stand-in for an identity (user id, IP), used in the chain and after erasure. */
export function pseudonym(key: Buffer, value: string): string {
  return isPseudonym(value) ? value : `${PSEUDONYM_PREFIX}${hmacHex(key, `audit-identity\0${value}`).slice(0, 32)}`;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, inner]) => inner !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, inner]) => `${JSON.stringify(key)}:${canonicalJson(inner)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/**
 * The hashed content of a row. Identities enter only as pseudonyms, so that erasure can replace them in the row
 * without breaking the chain.
 */
export function canonicalContent(pseudonymKey: Buffer, event: AuditEventPayload): string {
  return canonicalJson({
    eventId: event.eventId,
    time: new Date(event.time).toISOString(),
    tenantId: event.tenantId,
    actor: event.actor === null ? null : pseudonym(pseudonymKey, event.actor),
    type: event.type,
    target: event.target,
    outcome: event.outcome,
    ip: event.ip === null ? null : pseudonym(pseudonymKey, event.ip),
    requestId: event.requestId,
    details: event.details,
  });
}

export interface ChainKeys {
  chainKey: Buffer;
  pseudonymKey: Buffer;
}

export function chainHash(keys: ChainKeys, previousHash: string, event: AuditEventPayload): string {
  return hmacHex(keys.chainKey, `${previousHash}\n${canonicalContent(keys.pseudonymKey, event)}`);
}

/** Appends one event at the end of the chain. Idempotent by event id, so a retried job writes it once. */
export async function appendAuditEvent(db: Knex, keys: ChainKeys, event: AuditEventPayload): Promise<boolean> {
  return (await appendAuditEvents(db, keys, [event])) === 1;
}

/**
 * Appends events in order, in one transaction under the chain lock (one lock and one insert for the whole batch).
 * Events already in the chain (by event id) are skipped. Returns how many were written.
 */
export async function appendAuditEvents(db: Knex, keys: ChainKeys, events: readonly AuditEventPayload[]): Promise<number> {
  if (events.length === 0) return 0;
  return db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?)', [CHAIN_LOCK_ID]);
    const known = await trx('audit_events').whereIn('event_id', events.map((event) => event.eventId)).pluck<string[]>('event_id');
    const seen = new Set(known);
    const last = await trx('audit_events').orderBy('id', 'desc').first<{ hash: string } | undefined>('hash');
    let previousHash = last?.hash ?? GENESIS_HASH;
    const rows = [];
    for (const event of events) {
      if (seen.has(event.eventId)) continue;
      seen.add(event.eventId);
      const hash = chainHash(keys, previousHash, event);
      rows.push({
        event_id: event.eventId,
        time: event.time,
        tenant_id: event.tenantId,
        actor: event.actor,
        type: event.type,
        target: event.target,
        outcome: event.outcome,
        ip: event.ip,
        request_id: event.requestId,
        details: JSON.stringify(event.details),
        prev_hash: previousHash,
        hash,
      });
      previousHash = hash;
    }
    // One multi-row INSERT assigns ids in the order of the rows, which is the chain order.
    if (rows.length > 0) await trx('audit_events').insert(rows);
    return rows.length;
  });
}

interface AuditRow {
  id: string;
  event_id: string;
  time: Date;
  tenant_id: string | null;
  actor: string | null;
  type: string;
  target: string | null;
  outcome: 'success' | 'failure' | 'denied';
  ip: string | null;
  request_id: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

export function rowToEvent(row: AuditRow): AuditEventPayload {
  return {
    eventId: row.event_id,
    time: row.time.toISOString(),
    tenantId: row.tenant_id,
    actor: row.actor,
    type: row.type,
    target: row.target,
    outcome: row.outcome,
    ip: row.ip,
    requestId: row.request_id,
    details: row.details,
  };
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  firstBrokenId?: string;
}

/** Walks the whole chain in order; the first row whose link or hash does not hold is reported. */
export async function verifyAuditChain(db: Knex, keys: ChainKeys, batchSize = 2000): Promise<VerifyResult> {
  let previousHash = GENESIS_HASH;
  let lastId = '0';
  let checked = 0;
  for (;;) {
    const rows = (await db('audit_events').where('id', '>', lastId).orderBy('id').limit(batchSize)) as AuditRow[];
    if (rows.length === 0) return { ok: true, checked };
    for (const row of rows) {
      const expected = chainHash(keys, previousHash, rowToEvent(row));
      if (row.prev_hash !== previousHash || !timingSafeEqualHex(row.hash, expected)) {
        return { ok: false, checked, firstBrokenId: String(row.id) };
      }
      previousHash = row.hash;
      lastId = String(row.id);
      checked += 1;
    }
  }
}
