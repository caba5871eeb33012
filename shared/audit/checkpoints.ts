import type { Knex } from 'knex';
import { hmacHex, timingSafeEqualHex } from '../crypto/index.js';
import { checkpointKey, type AuditKeyring, type AuditKeySet } from './keys.js';
import type { ChainPosition } from './verify.js';

/**
 * Verification checkpoints (`audit_checkpoints`): "the chain held up to row N, whose hash was H, with C rows",
 * signed with a sub-key of the audit chain key, so that the verify job walks on from there instead of from the
 * first row. A checkpoint that does not authenticate (edited, or signed with a key no longer configured) is ignored.
 */

interface CheckpointRow {
  last_id: string;
  last_hash: string;
  checked: string;
  key_id: string;
  signature: string;
}

function sign(set: AuditKeySet, position: ChainPosition): string {
  const key = checkpointKey(set);
  try {
    return hmacHex(key, `checkpoint\0${position.lastId}\0${position.lastHash}\0${position.checked}`);
  } finally {
    key.fill(0);
  }
}

export type LoadedCheckpoint = { status: 'none' } | { status: 'unverifiable' } | { status: 'valid'; position: ChainPosition };

/** The newest checkpoint, authenticated. */
export async function latestCheckpoint(db: Knex, keyring: AuditKeyring): Promise<LoadedCheckpoint> {
  const row = await db('audit_checkpoints').orderBy('id', 'desc').first<CheckpointRow | undefined>('last_id', 'last_hash', 'checked', 'key_id', 'signature');
  if (row === undefined) return { status: 'none' };
  const position: ChainPosition = { lastId: String(row.last_id), lastHash: row.last_hash, checked: Number(row.checked) };
  const set = keyring.find(row.key_id);
  if (set === undefined || !timingSafeEqualHex(row.signature, sign(set, position))) return { status: 'unverifiable' };
  return { status: 'valid', position };
}

/** Records a position the walk reached, signed with the current key set. */
export async function saveCheckpoint(db: Knex, keyring: AuditKeyring, position: ChainPosition): Promise<void> {
  const set = keyring.current;
  await db('audit_checkpoints').insert({
    last_id: position.lastId,
    last_hash: position.lastHash,
    checked: position.checked,
    key_id: set.kid,
    signature: sign(set, position),
  });
}
