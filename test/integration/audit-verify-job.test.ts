/**
 * Audit verification as a job: `POST /api/audit/verify` queues it, the audit worker walks the chain in pages from
 * the last verified checkpoint (signed with the chain key), `GET /api/audit/verify` shows the latest run in the
 * shape the console reads.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { appendAuditEvents } from '../../shared/audit/index.js';
import { AUDIT_ROLE } from '../../shared/db/index.js';
import type { AuditEventPayload } from '../../shared/queue/index.js';
import type { RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, loginTokens, postJson, startTestApi, startTestAuditWorker, type TestApi } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/process.js';

let sequence = 0;
function event(): AuditEventPayload {
  sequence += 1;
  return {
    eventId: randomUUID(),
    time: new Date(Date.UTC(2031, 0, 1) + sequence * 1000).toISOString(),
    tenantId: null,
    actor: `user-${sequence % 5}`,
    type: 'api.call',
    target: `verify-test:${sequence}`,
    outcome: 'success',
    ip: `192.0.2.${sequence % 200}`,
    requestId: null,
    details: { sequence },
  };
}

const RUN_KEYS = ['checked', 'finishedAt', 'jobId', 'ok', 'startedAt', 'state'];

describe('audit: verification as a job', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  let worker: RunningWorkers | undefined;
  let adminAuth: Record<string, string>;
  let memberAuth: Record<string, string>;
  const prefix = uniqueQueuePrefix();
  const owner = (): Knex => database.ownerDb;

  const getRun = async (auth = adminAuth): Promise<{ status: number; body: Record<string, unknown> }> => {
    const response = await fetch(`${api.url}/api/audit/verify`, { headers: auth });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  async function finished(jobId: unknown): Promise<Record<string, unknown>> {
    return waitFor(async () => {
      const { body } = await getRun();
      return body.jobId === jobId && (body.state === 'done' || body.state === 'failed') ? body : false;
    }, 30_000);
  }

  async function run(body: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const queued = await postJson(`${api.url}/api/audit/verify`, body, adminAuth);
    expect(queued.status, JSON.stringify(queued.body)).to.equal(202);
    return finished(queued.body.jobId);
  }

  async function append(count: number): Promise<void> {
    const events = Array.from({ length: count }, event);
    await appendAuditEvents(database.dbAs(AUDIT_ROLE), api.kernel.keys.auditKeys, events);
  }

  async function total(): Promise<number> {
    const [row] = await owner()('audit_events').count<Array<{ n: string }>>('* as n');
    return Number(row?.n ?? 0);
  }

  async function drained(): Promise<void> {
    await waitFor(async () => Object.values(await api.kernel.queues.queue('audit').getJobCounts('waiting', 'active', 'delayed')).every((n) => n === 0), 20_000);
  }

  before(async () => {
    database = await createTestDatabase();
    const config = apiTestConfig(database.url);
    api = await startTestApi(config, prefix);
    const admin = await createTestUser(config, { role: 'admin' });
    const member = await createTestUser(config, { role: 'user' });
    adminAuth = { authorization: `Bearer ${(await loginTokens(api, admin)).accessToken}` };
    memberAuth = { authorization: `Bearer ${(await loginTokens(api, member)).accessToken}` };
  });

  after(async () => {
    await api?.stop();
    await worker?.shutdown();
    await database?.destroy();
  });

  it('GET before any run: 200 {state:"none"}', async () => {
    expect(await getRun()).to.deep.equal({ status: 200, body: { state: 'none' } });
  });

  it('only admins: 403 for a user, 401 anonymous; a bad body is 400 naming the field', async () => {
    expect((await postJson(`${api.url}/api/audit/verify`, {}, memberAuth)).status).to.equal(403);
    expect((await getRun(memberAuth)).status).to.equal(403);
    expect((await postJson(`${api.url}/api/audit/verify`, {})).status).to.equal(401);
    const bad = await postJson(`${api.url}/api/audit/verify`, { full: 'yes' }, adminAuth);
    expect(bad.status).to.equal(400);
    expect(bad.body).to.include({ error: 'invalid_request', field: 'full' });
    expect((await postJson(`${api.url}/api/audit/verify`, { from: 0 }, adminAuth)).body).to.include({ error: 'invalid_request', field: 'from' });
  });

  it('while no worker runs: 202 {jobId}, the run is queued, and a second request joins it', async () => {
    const first = await postJson(`${api.url}/api/audit/verify`, {}, adminAuth);
    expect(first.status).to.equal(202);
    expect(Object.keys(first.body)).to.deep.equal(['jobId']);
    expect(first.body.jobId).to.match(/^[0-9a-f-]{36}$/);
    expect((await getRun()).body).to.deep.equal({ jobId: first.body.jobId, state: 'queued' });
    const second = await postJson(`${api.url}/api/audit/verify`, {}, adminAuth);
    expect(second.body.jobId).to.equal(first.body.jobId);

    worker = await startTestAuditWorker(api.config, prefix);
    const done = await finished(first.body.jobId);
    expect(Object.keys(done).sort()).to.deep.equal(RUN_KEYS);
    expect(done).to.include({ state: 'done', ok: true });
    expect(Date.parse(String(done.finishedAt))).to.be.at.least(Date.parse(String(done.startedAt)));
  });

  it('a run walks on from the last checkpoint: `checked` counts from the first row, checkpoints are signed', async () => {
    await drained();
    await append(3000);
    await drained();
    const before = await total();
    const first = await run();
    expect(first).to.include({ ok: true });
    expect(first.checked).to.be.within(before, before + 1);
    const checkpoint = await owner()('audit_checkpoints').orderBy('id', 'desc').first<{ last_id: string; checked: string; key_id: string; signature: string }>();
    expect(checkpoint?.key_id).to.equal(api.kernel.keys.auditKeys.current.kid);
    expect(checkpoint?.signature).to.match(/^[0-9a-f]{64}$/);

    await append(10);
    await drained();
    const rows = await total();
    const second = await run();
    expect(second.ok).to.equal(true);
    expect(second.checked).to.be.within(rows, rows + 1);
  });

  it('a row changed after the last checkpoint is found by the next run', async () => {
    await drained();
    await run();
    await append(5);
    const rows = await owner()('audit_events').orderBy('id', 'desc').limit(5).select<Array<{ id: string }>>('id');
    const target = rows[2];
    if (target === undefined) throw new Error('no rows');
    await owner().transaction(async (trx) => {
      await trx.raw('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      await trx('audit_events').where({ id: target.id }).update({ outcome: 'failure' });
      await trx.raw('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
    });
    const broken = await run();
    expect(broken).to.include({ ok: false, firstBrokenId: String(target.id) });
    const before = await owner()('audit_events').where('id', '<', target.id).count<Array<{ n: string }>>('* as n');
    expect(broken.checked).to.equal(Number(before[0]?.n));
    // Fixed again: the next run goes on (no checkpoint was written past the break).
    await owner().transaction(async (trx) => {
      await trx.raw('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      await trx('audit_events').where({ id: target.id }).update({ outcome: 'success' });
      await trx.raw('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
    });
    expect((await run()).ok).to.equal(true);
  });

  it('a row before the checkpoint: an incremental run does not walk it, a full run finds it; the checkpoint row itself is checked', async () => {
    await drained();
    await run();
    const [early] = await owner()('audit_events').orderBy('id').limit(1).offset(10).select<Array<{ id: string; details: unknown }>>('id', 'details');
    if (early === undefined) throw new Error('no rows');
    const edit = async (id: string, change: Record<string, unknown>): Promise<void> =>
      owner().transaction(async (trx) => {
        await trx.raw('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
        await trx('audit_events').where({ id }).update(change);
        await trx.raw('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
      });
    await edit(early.id, { details: JSON.stringify({ forged: true }) });
    expect((await run()).ok, 'incremental').to.equal(true);
    expect(await run({ full: true })).to.include({ ok: false, checked: 10, firstBrokenId: String(early.id) });
    await edit(early.id, { details: JSON.stringify(early.details) });
    expect((await run({ full: true })).ok).to.equal(true);

    // The checkpoint's row is not the chain's last (new rows would chain onto its edited hash).
    await append(5);
    await drained();
    const checkpoint = await owner()('audit_checkpoints').orderBy('id', 'desc').first<{ last_id: string; last_hash: string }>();
    if (checkpoint === undefined) throw new Error('no checkpoint');
    await edit(String(checkpoint.last_id), { hash: 'f'.repeat(64) });
    expect(await run()).to.include({ ok: false, firstBrokenId: String(checkpoint.last_id) });
    await edit(String(checkpoint.last_id), { hash: checkpoint.last_hash });
  });

  it('a checkpoint that does not authenticate is ignored: the run walks from the first row', async () => {
    await drained();
    const rows = await total();
    const last = await owner()('audit_events').orderBy('id', 'desc').first<{ id: string; hash: string }>('id', 'hash');
    // A forged "verified up to the end" whose signature was not made with the chain key.
    await owner()('audit_checkpoints').insert({ last_id: last?.id, last_hash: last?.hash, checked: rows + 1000, key_id: api.kernel.keys.auditKeys.current.kid, signature: 'a'.repeat(64) });
    const result = await run();
    expect(result.ok, JSON.stringify(result)).to.equal(true);
    expect(result.checked).to.be.within(rows, rows + 1);
  });

  it('a run whose job was lost (not in the queue) does not block the next: it is marked failed', async () => {
    await drained();
    const lost = randomUUID();
    await owner()('audit_verify_runs').insert({ id: lost, state: 'queued' });
    const queued = await postJson(`${api.url}/api/audit/verify`, {}, adminAuth);
    expect(queued.body.jobId).to.not.equal(lost);
    expect((await owner()('audit_verify_runs').where({ id: lost }).first<{ state: string }>('state'))?.state).to.equal('failed');
    const result = await finished(queued.body.jobId);
    expect(result.ok, JSON.stringify(result)).to.equal(true);
  });

  it('the API role cannot write checkpoints; the audit role cannot create runs', async () => {
    const apiDb = database.dbAs('botserver_api');
    const auditDb = database.dbAs(AUDIT_ROLE);
    const refused = async (query: PromiseLike<unknown>): Promise<string | undefined> => {
      try {
        await query;
        return undefined;
      } catch (error) {
        return (error as { code?: string }).code;
      }
    };
    expect(await refused(apiDb('audit_checkpoints').insert({ last_id: 1, last_hash: 'x', checked: 1, key_id: 'k', signature: 's' }))).to.equal('42501');
    expect(await refused(auditDb('audit_verify_runs').insert({ id: randomUUID(), state: 'queued' }))).to.equal('42501');
    expect(await refused(auditDb('audit_checkpoints').where('id', '>', 0).delete())).to.equal('42501');
  });
});
