import type { Config } from '../../shared/config/index.js';
import { createDb, ensureDatabase, migrateLatest } from '../../shared/db/index.js';

/** Creates the database when missing and applies every pending migration as the owner (DATABASE_URL's user). */
export async function migrate(config: Config): Promise<string[]> {
  await ensureDatabase(config.databaseUrl);
  const owner = createDb({ url: config.databaseUrl, poolMax: 1 });
  try {
    const result = await migrateLatest(owner);
    return result.applied;
  } finally {
    await owner.destroy();
  }
}
