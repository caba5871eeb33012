import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { canonicalContent } from '../../shared/audit/chain.js';
import { rowToEvent, verifyAuditChain, type AuditRow } from '../../shared/audit/index.js';
import { AUDIT_ROLE } from '../../shared/db/index.js';
import { Keys } from '../../shared/keys.js';
import { insertBulkChain } from '../../test/helpers/audit-chain.js';
import { testConfig } from '../../test/helpers/config.js';
import { createTestDatabase } from '../../test/helpers/db.js';
import { round1, table } from './stats.js';

/**
 * Audit chain verification: an N-row chain (default 1,000,000) built in bulk in a throwaway database, then walked
 * three ways, each in pages of 2,000 rows by id as the audit role: reading only (PostgreSQL's share), reading and
 * computing one HMAC per row over its canonical content (the bare work of a check), and `verifyAuditChain` (links,
 * key ids, constant-time comparison). Rows per second for each, and ours against the bare figure.
 */

const DEFAULT_ROWS = 1_000_000;
const PAGE = 2000;

async function timed(label: string, rows: number, work: () => Promise<unknown>): Promise<string[]> {
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1000;
  return [label, `${round1(seconds)} s`, `${Math.round(rows / seconds)}`];
}

export async function run(args: string[]): Promise<number> {
  const rowsArg = args.indexOf('--rows');
  const rows = rowsArg >= 0 ? Number(args[rowsArg + 1]) : DEFAULT_ROWS;
  if (!Number.isSafeInteger(rows) || rows < 1) {
    process.stderr.write('usage: npm run bench -- audit [--rows N]\n');
    return 2;
  }
  const database = await createTestDatabase();
  const keys = new Keys(testConfig({ DATABASE_URL: database.url }).secrets);
  try {
    const set = keys.auditKeys.current;
    const built = performance.now();
    await insertBulkChain(database.ownerDb, set, rows);
    process.stdout.write(`chain of ${rows} rows built in ${round1((performance.now() - built) / 1000)} s\n`);
    const db = database.dbAs(AUDIT_ROLE);
    const pages = async (each: (row: AuditRow) => void): Promise<void> => {
      let lastId = '0';
      for (;;) {
        const page = (await db('audit_events').where('id', '>', lastId).orderBy('id').limit(PAGE)) as AuditRow[];
        if (page.length === 0) return;
        for (const row of page) each(row);
        lastId = String(page[page.length - 1]?.id);
      }
    };
    const results = [
      await timed('read pages only (PostgreSQL)', rows, () => pages(() => undefined)),
      await timed('read + one HMAC per row (bare)', rows, () =>
        pages((row) => createHmac('sha256', set.chainKey).update(`${row.prev_hash}\n${canonicalContent(set.pseudonymKey, rowToEvent(row))}`).digest('hex')),
      ),
      await timed('verifyAuditChain (ours)', rows, async () => {
        const result = await verifyAuditChain(db, keys.auditKeys, PAGE);
        if (!result.ok || result.checked !== rows) throw new Error(`verification failed: ${JSON.stringify(result)}`);
      }),
    ];
    process.stdout.write(`${table([['walk', 'time', 'rows/s'], ...results])}\n`);
    const bare = Number(results[1]?.[2]);
    const ours = Number(results[2]?.[2]);
    process.stdout.write(`ours / bare: ${round1(ours / bare)} (the verify job walks the same way, in the audit worker process)\n`);
    return 0;
  } finally {
    keys.zeroize();
    await database.destroy();
  }
}
