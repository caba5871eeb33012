import type { Knex } from 'knex';
import { hmacHex } from '../crypto/index.js';
import { inlined, lastRows, queryPrepared } from '../db/index.js';
import type { AuditEventPayload } from '../queue/index.js';
import { toAuditKeyring, type AuditKeyring, type ChainKeys, type ChainKeySource } from './keys.js';

export type { ChainKeys } from './keys.js';

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

const USER_TARGET_PREFIX = 'user:';

/** The user a target names (`user:<id>`), if any. */
function userOfTarget(target: string | null): string | undefined {
  return target !== null && target.startsWith(USER_TARGET_PREFIX) ? target.slice(USER_TARGET_PREFIX.length) : undefined;
}

/** A target naming a user enters the hash with the user as a pseudonym (like actors), so erasure may replace it too. */
export function pseudonymousTarget(key: Buffer, target: string | null): string | null {
  const user = userOfTarget(target);
  return user === undefined ? target : `${USER_TARGET_PREFIX}${pseudonym(key, user)}`;
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
 * The hashed content of a row. Identities (actor, IP, a user named as target) enter only as pseudonyms, so that
 * erasure can replace them in the row without breaking the chain.
 */
export function canonicalContent(pseudonymKey: Buffer, event: AuditEventPayload): string {
  return canonicalJson({
    eventId: event.eventId,
    time: new Date(event.time).toISOString(),
    tenantId: event.tenantId,
    actor: event.actor === null ? null : pseudonym(pseudonymKey, event.actor),
    type: event.type,
    target: pseudonymousTarget(pseudonymKey, event.target),
    outcome: event.outcome,
    ip: event.ip === null ? null : pseudonym(pseudonymKey, event.ip),
    requestId: event.requestId,
    details: event.details,
  });
}

export function chainHash(keys: ChainKeys, previousHash: string, event: AuditEventPayload): string {
  return hmacHex(keys.chainKey, `${previousHash}\n${canonicalContent(keys.pseudonymKey, event)}`);
}

/** Appends one event at the end of the chain. Idempotent by event id, so a retried job writes it once. */
export async function appendAuditEvent(db: Knex, keys: ChainKeySource, event: AuditEventPayload): Promise<boolean> {
  return (await appendAuditEvents(db, keys, [event])) === 1;
}

/** An erasure is recorded as a `data.erase` event whose `details.subject` is the erased identity's pseudonym. */
export const ERASURE_EVENT_TYPE = 'data.erase';

/** Raw (not yet pseudonymous) identities of an event that an erasure would replace: its actor and a user target. */
function rawIdentities(event: AuditEventPayload): string[] {
  const user = userOfTarget(event.target);
  return [event.actor, user].filter((value): value is string => value !== null && value !== undefined && !isPseudonym(value));
}

/** The identity's pseudonyms under every configured key set: an erasure may have been recorded under an older one. */
function pseudonymsOf(keyring: AuditKeyring, identity: string): string[] {
  return keyring.all.map((set) => pseudonym(set.pseudonymKey, identity));
}

/**
 * An event of an identity erased before it reached the chain (it was still in the queue, or retried) is stored as
 * the erasure left the rows already written: the pseudonym as actor (with a pseudonymous IP) or as the user target.
 * The chain hash is the same either way (it covers identities as pseudonyms only).
 */
function withErasedIdentity(keyring: AuditKeyring, event: AuditEventPayload, erased: ReadonlySet<string>): AuditEventPayload {
  const keys = keyring.current;
  const isErased = (identity: string): boolean => pseudonymsOf(keyring, identity).some((subject) => erased.has(subject));
  let result = event;
  if (event.actor !== null && !isPseudonym(event.actor) && isErased(event.actor)) {
    result = { ...result, actor: pseudonym(keys.pseudonymKey, event.actor), ip: event.ip === null ? null : pseudonym(keys.pseudonymKey, event.ip) };
  }
  const user = userOfTarget(event.target);
  if (user !== undefined && !isPseudonym(user) && isErased(user)) {
    result = { ...result, target: pseudonymousTarget(keys.pseudonymKey, event.target) };
  }
  return result;
}

/**
 * Appends events in order, in one transaction under the chain lock (one lock and one insert for the whole batch),
 * hashed with the current key set, whose kid each row records. Events already in the chain (by event id) are
 * skipped. Returns how many were written.
 */
export async function appendAuditEvents(db: Knex, source: ChainKeySource, events: readonly AuditEventPayload[]): Promise<number> {
  if (events.length === 0) return 0;
  const keyring = toAuditKeyring(source);
  const keys = keyring.current;
  return db.transaction(async (trx) => {
    const { known, lastHash, erased } = await lockChainEnd(trx, keyring, events);
    const seen = new Set(known);
    let previousHash = lastHash ?? GENESIS_HASH;
    const rows: AuditInsertRow[] = [];
    for (const original of events) {
      if (seen.has(original.eventId)) continue;
      seen.add(original.eventId);
      const subject = original.type === ERASURE_EVENT_TYPE ? original.details.subject : undefined;
      if (typeof subject === 'string') erased.add(subject);
      const event = withErasedIdentity(keyring, original, erased);
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
        details: event.details,
        prev_hash: previousHash,
        hash,
        key_id: keys.kid,
      });
      previousHash = hash;
    }
    if (rows.length > 0) await queryPrepared(trx, 'botserver.audit_events.append', INSERT_ROWS, [JSON.stringify(rows)]);
    return rows.length;
  });
}

interface AuditInsertRow {
  event_id: string;
  time: string;
  tenant_id: string | null;
  actor: string | null;
  type: string;
  target: string | null;
  outcome: string;
  ip: string | null;
  request_id: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
  key_id: string;
}

/**
 * The rows in one statement, bound as one JSON array: ids are assigned in the array's order, which is the chain
 * order (ORDER BY the ordinality, so no plan may reorder them). Named: a prepared statement, planned once per connection.
 */
const INSERT_ROWS = `INSERT INTO audit_events (event_id, time, tenant_id, actor, type, target, outcome, ip, request_id, details, prev_hash, hash, key_id)
  SELECT r.event_id, r.time, r.tenant_id, r.actor, r.type, r.target, r.outcome, r.ip, r.request_id, r.details, r.prev_hash, r.hash, r.key_id
  FROM ROWS FROM (jsonb_to_recordset(?::jsonb) AS (event_id uuid, time timestamptz, tenant_id uuid, actor text, type text, target text,
    outcome text, ip text, request_id text, details jsonb, prev_hash text, hash text, key_id text)) WITH ORDINALITY
    AS r(event_id, time, tenant_id, actor, type, target, outcome, ip, request_id, details, prev_hash, hash, key_id, position)
  ORDER BY r.position`;

interface ChainEnd {
  /** The batch's event ids already in the chain. */
  known: string[];
  lastHash: string | undefined;
  /** Which of the batch's identities (as pseudonyms under every key set) were erased: a partial index on `details->>'subject'` serves this. */
  erased: Set<string>;
}

/**
 * Takes the chain lock, then reads the end of the chain, in one round trip: the lock and the read go as one
 * simple-protocol query, whose second statement takes its snapshot after the lock is held (READ COMMITTED), so it
 * sees every batch committed before. An erasure appends its event under the same lock, so it is either seen here
 * or commits after this batch, and then its pseudonymisation pass covers these rows. Only ids and pseudonyms are
 * inlined, which are inline-safe.
 */
async function lockChainEnd(trx: Knex.Transaction, keyring: AuditKeyring, events: readonly AuditEventPayload[]): Promise<ChainEnd> {
  const pseudonyms = [...new Set(events.flatMap(rawIdentities).flatMap((identity) => pseudonymsOf(keyring, identity)))];
  const read = trx.raw(
    `SELECT (SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1) AS last_hash,
       ARRAY(SELECT event_id::text FROM audit_events WHERE event_id = ANY(?::uuid[])) AS known,
       ARRAY(SELECT details->>'subject' FROM audit_events WHERE type = ? AND (details->>'subject') = ANY(?::text[])) AS erased`,
    [events.map((event) => event.eventId), ERASURE_EVENT_TYPE, pseudonyms],
  );
  const [row] = lastRows<{ last_hash: string | null; known: string[]; erased: string[] }>(await trx.raw(`SELECT pg_advisory_xact_lock(${CHAIN_LOCK_ID}); ${inlined(read)}`));
  return { known: row?.known ?? [], lastHash: row?.last_hash ?? undefined, erased: new Set(row?.erased ?? []) };
}

/** A row of audit_events as PostgreSQL returns it. */
export interface AuditRow {
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
  /** Kid of the key set the row was hashed with; null for rows written before key ids were recorded. */
  key_id: string | null;
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
