import { createAccount, type CreatedAccount, type NewAccount } from '../../shared/accounts/index.js';
import type { Config } from '../../shared/config/index.js';
import { createDb, familyRole } from '../../shared/db/index.js';
import { Keys } from '../../shared/keys.js';

/** Creates a local account as the API's role, exactly as `POST /api/users` does. */
export async function createUser(config: Config, input: NewAccount): Promise<CreatedAccount> {
  const keys = new Keys(config.secrets);
  const db = createDb({ url: config.databaseUrl, role: familyRole.api, poolMax: 2 });
  try {
    return await createAccount(db, keys, input);
  } finally {
    await db.destroy();
    keys.zeroize();
  }
}
