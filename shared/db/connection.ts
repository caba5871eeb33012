import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { quoteIdentifier } from './identifiers.js';

export interface DbOptions {
  /** postgres://user[:password]@host:port/database */
  url: string;
  /** When set, every pooled connection runs `SET ROLE "<role>"` right after it is opened. */
  role?: string;
  /** Largest number of pooled connections (default 10). */
  poolMax?: number;
}

type AfterCreateDone = (error: Error | null, connection: pg.Client) => void;

const PLAIN_ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Creates a knex pool on PostgreSQL; with `role`, each connection works as that least-privileged role. */
export function createDb(options: DbOptions): Knex {
  if (options.role !== undefined && !PLAIN_ROLE_NAME.test(options.role)) {
    throw new RangeError('createDb: role must be a plain lower-case PostgreSQL identifier');
  }
  const setRoleSql = options.role === undefined ? undefined : `SET ROLE ${quoteIdentifier(options.role)}`;
  const pool: Knex.PoolConfig = { min: 0, max: options.poolMax ?? 10 };
  if (setRoleSql !== undefined) {
    pool.afterCreate = (connection: pg.Client, done: AfterCreateDone): void => {
      connection.query(setRoleSql).then(
        () => done(null, connection),
        (error: unknown) => done(error instanceof Error ? error : new Error(String(error)), connection),
      );
    };
  }
  return knexFactory({ client: 'pg', connection: options.url, pool });
}

/** The name of the database a connection URL points at. */
export function databaseName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (name.length === 0) throw new RangeError('The database URL names no database');
  return name;
}

/** The same server and credentials as `url`, but another database (e.g. the `postgres` maintenance database). */
export function withDatabaseName(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

const DUPLICATE_DATABASE = '42P04';

/** Creates the database named by `url` when it does not exist yet (via the server's `postgres` database). */
export async function ensureDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  const client = new pg.Client({ connectionString: withDatabaseName(url, 'postgres') });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount !== 0) return;
    await client.query(`CREATE DATABASE ${quoteIdentifier(name)}`);
  } catch (error: unknown) {
    // Another process created it between our check and our CREATE: that is the outcome we wanted.
    if (!(error instanceof Error && 'code' in error && error.code === DUPLICATE_DATABASE)) throw error;
  } finally {
    await client.end();
  }
}
