import { expect } from 'chai';
import knex, { type Knex } from 'knex';
import type { Config } from '../../shared/config/index.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { migrate } from '../../scripts/commands/migrate.js';
import { apiTestConfig, createTestUser, loginTokens, startTestApi, type TestApi } from '../helpers/api.js';
import { closeAllClients, connectClient, restJson, restOk, type AckResponse } from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { startPrivatePostgres, startPrivateRedis, type PrivateService } from '../helpers/private-services.js';

const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const SOCKETS = 12;
/** Each socket sends one message this often: 12 sockets make about 10 messages/s. */
const SEND_EVERY_MS = 1200;
const OUTAGE_MS = 3000;

interface Traffic {
  accepted: string[];
  refusals: AckResponse[];
  ackTimeouts: number;
  disconnects: string[];
}

/**
 * Outages of Redis and PostgreSQL while visitors chat: the server refuses what it cannot do as `unavailable` with a
 * `retryAfterMs`, the clients back off as told and resend with the same clientMessageId, and nothing turns into an
 * `internal_error`, a disconnect or a security alert. Every accepted message is stored once and answered once.
 */
describe('outages: retryable refusals, no false abuse alarms, nothing lost', function () {
  this.timeout(180_000);
  let redis: PrivateService;
  let postgres: PrivateService;
  let config: Config;
  let api: TestApi;
  let workers: RunningWorkers[];
  let db: Knex;
  let botId: string;
  let operatorToken: string;

  before(async () => {
    [redis, postgres] = await Promise.all([startPrivateRedis(), startPrivatePostgres()]);
    config = apiTestConfig(postgres.url, { REDIS_URL: redis.url, BOTSERVER_JOB_LOCK_MS: '2000' });
    await migrate(config);
    const prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    workers = [await startWorkers(config, 'reply', { queuePrefix: prefix }), await startWorkers(config, 'audit', { queuePrefix: prefix })];
    db = knex({ client: 'pg', connection: postgres.url, pool: { min: 0, max: 2 } });
    const operator = await createTestUser(config, { role: 'operator' });
    operatorToken = (await loginTokens(api, operator)).accessToken;
    botId = String((await restOk('POST', `${api.url}/api/bots`, 201, { token: operatorToken, body: { name: 'Outage bot', public: true, rules: [{ match: 'hours', reply: 'We open at 9.' }] } })).id);
  });
  after(async () => {
    closeAllClients();
    await Promise.allSettled(workers.map((running) => running.shutdown()));
    await api.stop();
    await db.destroy();
    await Promise.allSettled([redis.destroy(), postgres.destroy()]);
  });

  /** One visitor: a message every SEND_EVERY_MS until `until`, each resent after `retryAfterMs` (with jitter) until accepted. */
  async function visitor(index: number, until: number, traffic: Traffic): Promise<void> {
    const guest = await restOk('POST', `${api.url}/api/bots/${botId}/guest-token`, 200, { body: {} });
    const conversationId = String(guest.conversationId);
    const client = await connectClient(api.url, { token: String(guest.token), timeoutMs: 10_000 });
    client.socket.on('disconnect', (reason: string) => traffic.disconnects.push(reason));
    expect(await client.join(conversationId, undefined, 10_000)).to.deep.equal({ ok: true });
    for (let sequence = 0; Date.now() < until; sequence += 1) {
      const clientMessageId = `visitor-${index}-${sequence}`;
      for (;;) {
        let ack: AckResponse;
        try {
          ack = await client.send(conversationId, `what are your hours? (${sequence})`, clientMessageId, 8000);
        } catch {
          traffic.ackTimeouts += 1;
          continue;
        }
        if (ack.ok) {
          if (ack.messageId !== undefined) traffic.accepted.push(ack.messageId);
          break;
        }
        traffic.refusals.push(ack);
        if (ack.error !== 'unavailable') break;
        await wait((ack.retryAfterMs ?? 1000) * (0.5 + Math.random()));
      }
      await wait(SEND_EVERY_MS * (0.75 + Math.random() / 2));
    }
  }

  async function chatThrough(outage: () => Promise<void>): Promise<Traffic> {
    const traffic: Traffic = { accepted: [], refusals: [], ackTimeouts: 0, disconnects: [] };
    const until = Date.now() + 10_000;
    const visitors = Array.from({ length: SOCKETS }, (_, index) => visitor(index, until, traffic));
    await wait(2000);
    await outage();
    await Promise.all(visitors);
    return traffic;
  }

  /** Every accepted message is stored once and gets exactly one reply (within the deadline). */
  async function expectAnsweredOnce(accepted: readonly string[]): Promise<void> {
    const ids = [...new Set(accepted)];
    expect(ids.length).to.be.greaterThan(SOCKETS);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const stored = await db('messages').whereIn('id', ids).count<Array<{ count: string }>>({ count: '*' });
      const replies = await db('messages').whereIn('reply_to', ids).select<Array<{ reply_to: string }>>('reply_to');
      if (Number(stored[0]?.count) === ids.length && replies.length === ids.length) break;
      if (Date.now() > deadline) throw new Error(`after 60 s: ${stored[0]?.count ?? 0} of ${ids.length} stored, ${replies.length} answered`);
      await wait(250);
    }
    const perMessage = await db('messages').whereIn('reply_to', ids).groupBy('reply_to').having(db.raw('count(*) > 1')).select('reply_to');
    expect(perMessage).to.deep.equal([]);
  }

  async function expectNoFalseAlarms(traffic: Traffic): Promise<void> {
    expect(traffic.disconnects, 'sockets disconnected').to.deep.equal([]);
    for (const refusal of traffic.refusals) {
      expect(refusal.ok).to.equal(false);
      if (!refusal.ok) {
        expect(refusal.error).to.equal('unavailable');
        expect(refusal.retryAfterMs).to.be.a('number').greaterThan(0);
      }
    }
    const alarms = await db('audit_events').where({ type: 'security.violation' }).count<Array<{ count: string }>>({ count: '*' });
    expect(Number(alarms[0]?.count)).to.equal(0);
  }

  it('PostgreSQL down for 3 s: refusals are `unavailable` with retryAfterMs, HTTP answers 503 with Retry-After, nothing lost or doubled', async () => {
    let http: Awaited<ReturnType<typeof restJson>> | undefined;
    let retryAfter: string | null = null;
    const traffic = await chatThrough(async () => {
      await postgres.kill();
      const response = await fetch(`${api.url}/api/bots`, { headers: { authorization: `Bearer ${operatorToken}` } });
      retryAfter = response.headers.get('retry-after');
      http = { status: response.status, body: (await response.json()) as Record<string, unknown>, text: '' };
      await wait(OUTAGE_MS);
      await postgres.start();
    });
    expect(http?.status).to.equal(503);
    expect(http?.body).to.include({ error: 'unavailable' });
    expect(http?.body.retryAfterMs).to.be.a('number');
    expect(Number(retryAfter)).to.be.greaterThan(0);
    expect(traffic.refusals.length, 'the outage was seen by the clients').to.be.greaterThan(0);
    await expectNoFalseAlarms(traffic);
    await expectAnsweredOnce(traffic.accepted);
  });

  it('Redis down for 3 s (a crash; the AOF is replayed): no socket is disconnected, nothing is lost or doubled', async () => {
    const traffic = await chatThrough(async () => {
      await redis.kill();
      await wait(OUTAGE_MS);
      await redis.start();
    });
    await expectNoFalseAlarms(traffic);
    await expectAnsweredOnce(traffic.accepted);
    const ready = await restJson('GET', `${api.url}/readyz`);
    expect(ready.body).to.include({ redis: 'up', postgres: 'up' });
  });
});
