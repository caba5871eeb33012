import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import pg from 'pg';
import { createDb, databaseName, ensureDatabase, migrateLatest, withDatabaseName } from '../../shared/db/index.js';

const DEFAULT_SERVER_URL = 'postgres://postgres@127.0.0.1:5432/botserver';

export interface TestDatabase {
  /** URL of the fresh database (the server and credentials of DATABASE_URL, a unique database name). */
  url: string;
  /** Connection as the migrating (owner) user. */
  ownerDb: Knex;
  /** A pool that works as `role` (SET ROLE on every connection); one pool per role, closed on destroy. */
  dbAs(role: string): Knex;
  /** Closes every pool and drops the database. */
  destroy(): Promise<void>;
}

/** Creates (and unless `migrate: false`, migrates) a uniquely named database `botserver_test_<random>`. */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const serverUrl = process.env.DATABASE_URL ?? DEFAULT_SERVER_URL;
  const url = withDatabaseName(serverUrl, `botserver_test_${randomBytes(6).toString('hex')}`);
  await ensureDatabase(url);
  const ownerDb = createDb({ url, poolMax: 4 });
  const rolePools = new Map<string, Knex>();
  try {
    if (options.migrate !== false) await migrateLatest(ownerDb);
  } catch (error: unknown) {
    await ownerDb.destroy();
    await dropDatabase(url);
    throw error;
  }
  return {
    url,
    ownerDb,
    dbAs(role: string): Knex {
      let pool = rolePools.get(role);
      if (pool === undefined) {
        pool = createDb({ url, role, poolMax: 2 });
        rolePools.set(role, pool);
      }
      return pool;
    },
    async destroy(): Promise<void> {
      await Promise.all([ownerDb, ...rolePools.values()].map((pool) => pool.destroy()));
      await dropDatabase(url);
    },
  };
}

/** Drops the database named by `url`, ending any session still connected to it. */
export async function dropDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  const client = new pg.Client({ connectionString: withDatabaseName(url, 'postgres') });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name.replaceAll('"', '""')}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/**
 * Mocha hooks for a suite: a fresh migrated database before it, dropped after it. Call inside `describe` and use
 * the returned getter in tests.
 */
export function useTestDatabase(): () => TestDatabase {
  let current: TestDatabase | undefined;
  before(async function () {
    this.timeout(60_000);
    current = await createTestDatabase();
  });
  after(async function () {
    this.timeout(60_000);
    await current?.destroy();
    current = undefined;
  });
  return () => {
    if (current === undefined) throw new Error('The test database is not ready (use it inside a test or hook)');
    return current;
  };
}

/** The PostgreSQL error a query fails with (SQLSTATE `code` and message), or undefined when it succeeds. */
export async function pgErrorOf(query: PromiseLike<unknown>): Promise<{ code: string; message: string } | undefined> {
  try {
    await query;
    return undefined;
  } catch (error: unknown) {
    if (error instanceof Error && 'code' in error && typeof error.code === 'string') {
      return { code: error.code, message: error.message };
    }
    throw error;
  }
}

/** SQLSTATE 42501: permission denied, including a row refused by a row-level security policy. */
export const INSUFFICIENT_PRIVILEGE = '42501';
