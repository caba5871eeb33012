import type { Knex } from 'knex';
import type { VerifyResult } from './verify.js';

/**
 * Runs of the audit verify job (`audit_verify_runs`): the API records a run as `queued` when it enqueues it, the
 * audit worker moves it to `running` and then `done` (with the result) or `failed`. `GET /api/audit/verify` shows
 * the latest one.
 */
export type VerifyRunState = 'queued' | 'running' | 'done' | 'failed';

interface RunRow {
  id: string;
  state: VerifyRunState;
  ok: boolean | null;
  checked: string | null;
  first_broken_id: string | null;
  started_at: Date | null;
  finished_at: Date | null;
}

/** The shape of `GET /api/audit/verify` for a run (the console relies on exactly these fields). */
export interface VerifyRunView {
  jobId: string;
  state: VerifyRunState;
  ok?: boolean;
  checked?: number;
  firstBrokenId?: string;
  startedAt?: string;
  finishedAt?: string;
}

export function runView(row: RunRow): VerifyRunView {
  return {
    jobId: row.id,
    state: row.state,
    ...(row.ok === null ? {} : { ok: row.ok }),
    ...(row.checked === null ? {} : { checked: Number(row.checked) }),
    ...(row.first_broken_id === null ? {} : { firstBrokenId: String(row.first_broken_id) }),
    ...(row.started_at === null ? {} : { startedAt: row.started_at.toISOString() }),
    ...(row.finished_at === null ? {} : { finishedAt: row.finished_at.toISOString() }),
  };
}

const RUN_COLUMNS = ['id', 'state', 'ok', 'checked', 'first_broken_id', 'started_at', 'finished_at'] as const;

export async function latestRun(db: Knex): Promise<VerifyRunView | undefined> {
  const row = await db('audit_verify_runs').orderBy('created_at', 'desc').orderBy('id', 'desc').first<RunRow | undefined>(RUN_COLUMNS);
  return row === undefined ? undefined : runView(row);
}

/** The newest run still queued or running, if any. */
export async function openRun(db: Knex): Promise<VerifyRunView | undefined> {
  const row = await db('audit_verify_runs').whereIn('state', ['queued', 'running']).orderBy('created_at', 'desc').first<RunRow | undefined>(RUN_COLUMNS);
  return row === undefined ? undefined : runView(row);
}

export async function createRun(db: Knex, run: { id: string; full: boolean }): Promise<void> {
  await db('audit_verify_runs').insert({ id: run.id, state: 'queued', full_walk: run.full });
}

/** Moves a queued (or, after a worker crash, running) run to `running`; false when it already ended. */
export async function startRun(db: Knex, id: string): Promise<boolean> {
  const rows = await db('audit_verify_runs').where({ id }).whereIn('state', ['queued', 'running']).update({ state: 'running', started_at: db.fn.now() }, ['id']);
  return rows.length === 1;
}

export async function finishRun(db: Knex, id: string, result: VerifyResult): Promise<void> {
  await db('audit_verify_runs')
    .where({ id })
    .update({ state: 'done', ok: result.ok, checked: result.checked, first_broken_id: result.firstBrokenId ?? null, finished_at: db.fn.now() });
}

export async function failRun(db: Knex, id: string): Promise<void> {
  await db('audit_verify_runs').where({ id }).whereIn('state', ['queued', 'running']).update({ state: 'failed', finished_at: db.fn.now() });
}
