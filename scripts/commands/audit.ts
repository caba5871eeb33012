import { verifyAuditChain, type VerifyResult } from '../../shared/audit/index.js';
import type { Config } from '../../shared/config/index.js';
import { createDb, familyRole } from '../../shared/db/index.js';
import { Keys } from '../../shared/keys.js';

export async function verifyAudit(config: Config): Promise<VerifyResult> {
  const keys = new Keys(config.secrets);
  const db = createDb({ url: config.databaseUrl, role: familyRole.audit, poolMax: 1 });
  try {
    return await verifyAuditChain(db, keys.auditKeys);
  } finally {
    await db.destroy();
    keys.zeroize();
  }
}
