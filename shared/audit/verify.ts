import type { Knex } from 'knex';
import { timingSafeEqualHex } from '../crypto/index.js';
import { chainHash, GENESIS_HASH, rowToEvent, type AuditRow } from './chain.js';
import { toAuditKeyring, type AuditKeyring, type ChainKeySource } from './keys.js';

export interface VerifyResult {
  ok: boolean;
  /** Rows found intact, from the first row of the chain (before the broken one, when one is). */
  checked: number;
  firstBrokenId?: string;
}

/** How far the chain is known to hold: the last intact row, its hash, and how many rows up to it. */
export interface ChainPosition {
  lastId: string;
  lastHash: string;
  checked: number;
}

export const GENESIS_POSITION: Readonly<ChainPosition> = Object.freeze({ lastId: '0', lastHash: GENESIS_HASH, checked: 0 });

const DEFAULT_PAGE_SIZE = 2000;

/**
 * Whether a row's hash holds: with the key set its kid names (an unknown kid never holds), or, for a row written
 * before kids were recorded, with any configured key set.
 */
function rowHolds(keyring: AuditKeyring, previousHash: string, row: AuditRow): boolean {
  const event = rowToEvent(row);
  const sets = row.key_id === null ? keyring.all : [keyring.find(row.key_id)].filter((set) => set !== undefined);
  return sets.some((set) => timingSafeEqualHex(row.hash, chainHash(set, previousHash, event)));
}

export interface WalkOptions {
  pageSize?: number;
  /** Called after every intact page with the position reached (the verify job stores checkpoints from it). */
  onPage?: (position: ChainPosition) => Promise<void>;
}

/**
 * Walks the chain in pages of rows after `from`, in order; the first row whose link or hash does not hold is
 * reported. Each page is one indexed query, so the walk holds no connection or lock between pages.
 */
export async function walkChain(db: Knex, keyring: AuditKeyring, from: ChainPosition, options: WalkOptions = {}): Promise<VerifyResult & { position: ChainPosition }> {
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  const position = { ...from };
  for (;;) {
    const rows = (await db('audit_events').where('id', '>', position.lastId).orderBy('id').limit(pageSize)) as AuditRow[];
    if (rows.length === 0) return { ok: true, checked: position.checked, position };
    for (const row of rows) {
      if (row.prev_hash !== position.lastHash || !rowHolds(keyring, position.lastHash, row)) {
        return { ok: false, checked: position.checked, firstBrokenId: String(row.id), position };
      }
      position.lastHash = row.hash;
      position.lastId = String(row.id);
      position.checked += 1;
    }
    await options.onPage?.({ ...position });
  }
}

/** Walks the whole chain from its first row (what `botserver audit verify` does). */
export async function verifyAuditChain(db: Knex, keys: ChainKeySource, pageSize = DEFAULT_PAGE_SIZE): Promise<VerifyResult> {
  const walked = await walkChain(db, toAuditKeyring(keys), GENESIS_POSITION, { pageSize });
  return walked.firstBrokenId === undefined ? { ok: walked.ok, checked: walked.checked } : { ok: walked.ok, checked: walked.checked, firstBrokenId: walked.firstBrokenId };
}
