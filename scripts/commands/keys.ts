import { Queue } from 'bullmq';
import type { Knex } from 'knex';
import { emailIndexCandidates } from '../../shared/accounts/index.js';
import { chainHash, rowToEvent, type AuditRow } from '../../shared/audit/index.js';
import type { Config } from '../../shared/config/index.js';
import { openString, type KeyRing } from '../../shared/crypto/index.js';
import { createDb, familyRole, withTenant } from '../../shared/db/index.js';
import { Keys, TOKEN_KID_REDIS_KEY } from '../../shared/keys.js';
import { QUEUE_NAMES } from '../../shared/queue/index.js';
import { createRedis } from '../../shared/kernel.js';

/**
 * `botserver keys rotate --check`: run with the configuration about to be deployed (new keys set, the replaced
 * ones in BOTSERVER_PREVIOUS_KEYS). It lists, by key id, what is stored under which key, and what this
 * configuration could no longer verify, decrypt or find. Nothing is changed.
 */

/** `current`/`previous`: a configured key serves it; `missing`: no configured key does (it would be lost); `ends`: refused by design. */
export type FindingStatus = 'current' | 'previous' | 'missing' | 'ends' | 'unknown';

export interface Finding {
  what: string;
  count: number;
  kid: string | null;
  status: FindingStatus;
  note: string;
}

export interface RotationReport {
  keyIds: Record<string, string>;
  findings: Finding[];
  /** True when something stored would become unverifiable, undecryptable or unfindable. */
  breaks: boolean;
}

const NOTES: Record<FindingStatus, string> = {
  current: 'under the current key',
  previous: 'under a key listed in BOTSERVER_PREVIOUS_KEYS: keep it listed',
  missing: 'NO configured key: this configuration would lose them',
  ends: 'refused by design after this rotation',
  unknown: 'cannot be attributed to a key',
};

function finding(what: string, count: number, kid: string | null, status: FindingStatus, note = NOTES[status]): Finding {
  return { what, count, kid, status, note };
}

function ringStatus(ring: KeyRing, kid: string): FindingStatus {
  if (kid === ring.currentKid) return 'current';
  try {
    ring.keyFor(kid);
    return 'previous';
  } catch {
    return 'missing';
  }
}

async function auditFindings(db: Knex, keys: Keys): Promise<Finding[]> {
  const ring = keys.auditKeys;
  const groups = await db('audit_events').groupBy('key_id').select<Array<{ key_id: string | null; n: string }>>('key_id', db.raw('count(*) as n'));
  const findings: Finding[] = [];
  for (const group of groups) {
    const count = Number(group.n);
    if (group.key_id !== null) {
      const status = ring.find(group.key_id) === undefined ? 'missing' : group.key_id === ring.current.kid ? 'current' : 'previous';
      findings.push(finding('audit rows', count, group.key_id, status, status === 'missing' ? 'NO configured key verifies them: audit verify would fail' : NOTES[status]));
      continue;
    }
    // Rows from before key ids: the newest of them tells which configured key set (if any) hashed them.
    const last = (await db('audit_events').whereNull('key_id').orderBy('id', 'desc').first()) as AuditRow | undefined;
    const set = last === undefined ? undefined : ring.all.find((candidate) => chainHash(candidate, last.prev_hash, rowToEvent(last)) === last.hash);
    const status = set === undefined ? 'missing' : set.kid === ring.current.kid ? 'current' : 'previous';
    findings.push(finding('audit rows without key id', count, set?.kid ?? null, status, status === 'missing' ? 'NO configured key verifies them: audit verify would fail' : NOTES[status]));
  }
  const checkpoint = await db('audit_checkpoints').orderBy('id', 'desc').first<{ key_id: string } | undefined>('key_id');
  if (checkpoint !== undefined && ring.find(checkpoint.key_id) === undefined) {
    findings.push(finding('audit verify checkpoint', 1, checkpoint.key_id, 'ends', 'its key is not configured: the next verify job walks from the first row'));
  }
  return findings;
}

async function recoveryFindings(db: Knex, keys: Keys): Promise<Finding[]> {
  const rows = await db
    .from(db.raw('users, jsonb_array_elements_text(users.mfa_recovery_codes) as code'))
    .groupByRaw("case when position(':' in code) > 0 then split_part(code, ':', 1) end")
    .select<Array<{ kid: string | null; n: string }>>(db.raw("case when position(':' in code) > 0 then split_part(code, ':', 1) end as kid"), db.raw('count(*) as n'));
  return rows.map((row) => {
    const count = Number(row.n);
    if (row.kid === null) {
      return finding('recovery codes without key id', count, null, 'unknown', 'made before key ids: accepted while the BOTSERVER_JWT_SECRET they were made under is current or listed in BOTSERVER_PREVIOUS_KEYS');
    }
    const ring = keys.recoveryCodeKeys;
    const status = ring.find(row.kid) === undefined ? 'missing' : row.kid === ring.current.kid ? 'current' : 'previous';
    return finding('recovery codes', count, row.kid, status, status === 'missing' ? 'NO configured key: these codes would stop working' : NOTES[status]);
  });
}

/** Accounts whose e-mail blind index is not under the current key (they are re-indexed at their next login). */
async function blindIndexFindings(db: Knex, keys: Keys): Promise<Finding[]> {
  const users = await db('users').select<Array<{ id: string; email_ciphertext: string; email_index: string }>>('id', 'email_ciphertext', 'email_index');
  let previous = 0;
  let missing = 0;
  let unreadable = 0;
  for (const user of users) {
    let email: string;
    try {
      email = openString(keys.columnRing, user.email_ciphertext, `users.email:${user.id}`);
    } catch {
      unreadable += 1;
      continue;
    }
    const position = emailIndexCandidates(keys, email).indexOf(user.email_index);
    if (position < 0) missing += 1;
    else if (position > 0) previous += 1;
  }
  const findings: Finding[] = [];
  if (previous > 0) findings.push(finding('accounts indexed under an earlier blind-index key', previous, null, 'previous', 'found through BOTSERVER_PREVIOUS_KEYS and re-indexed at their next login: keep the key listed until then'));
  if (missing > 0) findings.push(finding('accounts whose e-mail index no configured key gives', missing, null, 'missing', 'NO configured key: they could not log in by e-mail'));
  if (unreadable > 0) findings.push(finding('accounts whose e-mail no configured key decrypts', unreadable, null, 'missing', 'NO configured key decrypts their address'));
  return findings;
}

interface SealedColumn {
  table: string;
  column: string;
}

/** Every column holding compact envelopes (`v1.<kid>.…`): `*_ciphertext`, and the files' wrapped data keys. */
async function sealedColumns(db: Knex): Promise<SealedColumn[]> {
  const rows = await db('information_schema.columns')
    .where({ table_schema: 'public' })
    .where((query) => query.where('column_name', 'like', '%\\_ciphertext').orWhere('column_name', 'wrapped_key'))
    .orderBy(['table_name', 'column_name'])
    .select<Array<{ table_name: string; column_name: string }>>('table_name', 'column_name');
  return rows.map((row) => ({ table: row.table_name, column: row.column_name }));
}

async function columnFindings(db: Knex, keys: Keys): Promise<Finding[]> {
  const columns = await sealedColumns(db);
  const tenants = await db('tenants').pluck<string[]>('id');
  const counts = new Map<string, number>();
  const tally = (column: SealedColumn, rows: Array<{ kid: string; n: string }>): void => {
    for (const row of rows) {
      const key = `${column.table}.${column.column}\0${row.kid}`;
      counts.set(key, (counts.get(key) ?? 0) + Number(row.n));
    }
  };
  const count = (trx: Knex | Knex.Transaction, column: SealedColumn): Promise<Array<{ kid: string; n: string }>> =>
    trx(column.table)
      .whereNotNull(column.column)
      .groupByRaw('1')
      .select<Array<{ kid: string; n: string }>>(trx.raw("split_part(??, '.', 2) as kid", [column.column]), trx.raw('count(*) as n'));
  for (const column of columns) {
    if (column.table === 'users' || column.table === 'tenants') tally(column, await count(db, column));
    else for (const tenant of tenants) tally(column, await withTenant(db, tenant, (trx) => count(trx, column)));
  }
  return [...counts.entries()].map(([key, n]) => {
    const [what = '', kid = ''] = key.split('\0');
    const ring = what.endsWith('.wrapped_key') ? keys.payloadRing : keys.columnRing;
    const status = ringStatus(ring, kid);
    return finding(what, n, kid, status, status === 'missing' ? 'NO configured key decrypts them' : NOTES[status]);
  });
}

async function queueFindings(config: Config, keys: Keys): Promise<Finding[]> {
  const redis = createRedis(config, 'botserver-keys-check');
  const findings: Finding[] = [];
  try {
    for (const name of QUEUE_NAMES) {
      const queue = new Queue(name, { connection: redis, prefix: config.queuePrefix });
      const kids = new Map<string, number>();
      try {
        const states = ['waiting', 'delayed', 'prioritized', 'active', 'failed'] as const;
        const total = Object.values(await queue.getJobCounts(...states)).reduce((sum, n) => sum + n, 0);
        for (let start = 0; start < total; start += 1000) {
          for (const job of await queue.getJobs([...states], start, start + 999)) {
            const kid = typeof (job.data as { kid?: unknown } | undefined)?.kid === 'string' ? (job.data as { kid: string }).kid : '?';
            kids.set(kid, (kids.get(kid) ?? 0) + 1);
          }
        }
      } finally {
        await queue.close();
      }
      for (const [kid, n] of kids) {
        const status = ringStatus(keys.payloadRing, kid);
        findings.push(finding(`${name} jobs not yet done`, n, kid, status, status === 'missing' ? 'NO configured key decrypts them: they would fail' : NOTES[status]));
      }
    }
    const running = await redis.get(TOKEN_KID_REDIS_KEY);
    if (running !== null && running !== keys.tokenKid) {
      let refresh = 0;
      let sessions = 0;
      for await (const batch of redis.scanStream({ match: 'botserver:refresh:*', count: 1000 }) as AsyncIterable<string[]>) refresh += batch.length;
      for await (const batch of redis.scanStream({ match: 'botserver:session:*', count: 1000 }) as AsyncIterable<string[]>) sessions += batch.length;
      findings.push(finding('refresh tokens (active and spent)', refresh, running, 'ends', 'hashed with the running token key: refused after the rotation (401 invalid_token; clients log in again)'));
      findings.push(finding('sessions', sessions, running, 'ends', 'cookie sessions end at once; a bearer session ends when its access token expires (15 minutes), its refresh token being refused'));
    }
  } finally {
    redis.disconnect();
  }
  return findings;
}

export async function checkRotation(config: Config): Promise<RotationReport> {
  const keys = new Keys(config.secrets);
  const db = createDb({ url: config.databaseUrl, role: familyRole.api, poolMax: 2 });
  try {
    const findings = [
      ...(await auditFindings(db, keys)),
      ...(await recoveryFindings(db, keys)),
      ...(await blindIndexFindings(db, keys)),
      ...(await columnFindings(db, keys)),
      ...(await queueFindings(config, keys)),
    ];
    return {
      keyIds: {
        'BOTSERVER_JWT_SECRET (token hashing)': keys.tokenKid,
        'BOTSERVER_JWT_SECRET (recovery codes)': keys.recoveryCodeKeys.current.kid,
        'BOTSERVER_JWT_SECRET (audit chain)': keys.auditKeys.current.kid,
        'DATABASE_ENCRYPTION_KEY (columns)': keys.columnRing.currentKid,
        'DATABASE_ENCRYPTION_KEY (blind index)': keys.blindIndexKid,
        'BOTSERVER_ENCRYPTION_KEY (payloads, files)': keys.payloadRing.currentKid,
      },
      findings,
      breaks: findings.some((item) => item.status === 'missing'),
    };
  } finally {
    await db.destroy();
    keys.zeroize();
  }
}

export function formatRotationReport(report: RotationReport): string {
  const lines = ['key ids of this configuration:'];
  for (const [what, kid] of Object.entries(report.keyIds)) lines.push(`  ${what}: ${kid}`);
  lines.push('stored data by key:');
  if (report.findings.length === 0) lines.push('  nothing stored yet');
  for (const item of report.findings) lines.push(`  ${item.status.toUpperCase().padEnd(8)} ${item.count} ${item.what}${item.kid === null ? '' : ` [${item.kid}]`}: ${item.note}`);
  lines.push(report.breaks ? 'result: this configuration would invalidate stored data (MISSING above); list the replaced keys in BOTSERVER_PREVIOUS_KEYS' : 'result: nothing stored would be lost with this configuration');
  return `${lines.join('\n')}\n`;
}
