/**
 * The egress policy against a running server (SSRF). Every connection in this file goes to a loopback listener:
 * the test peers (Dovecot and an SMTP peer on 127.0.0.1) and a recording listener on 127.0.0.2. With
 * BOTSERVER_EGRESS_ALLOW set to the peers' address only (replacing the development default `loopback`), 127.0.0.2 stands in for
 * an internal address the server must not reach; names resolve through a stub resolver, never through DNS.
 */
import net, { type AddressInfo } from 'node:net';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { createKernel, type Kernel } from '../../shared/kernel.js';
import type { Resolver } from '../../shared/net/egress.js';
import { startEmailWorker } from '../../workers/email/index.js';
import type { RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, startTestApi, startTestAuditWorker, type TestApi } from '../helpers/api.js';
import { restJson, signedInUser, signOutAll, type SignedInUser } from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { addMailUser, channelFor, ensureMailServer, IMAP_PORT, startSmtpPeer, type MailUser, type SmtpPeer } from '../helpers/mail.js';
import { waitFor } from '../helpers/process.js';

const METRICS_TOKEN = 'egress-test-metrics-token-0123456789';

/** A TCP listener on 127.0.0.2 that records every connection made to it. */
interface Recorder {
  port: number;
  connections: number;
  close(): Promise<void>;
}

async function recordingListener(port = 0): Promise<Recorder> {
  const sockets = new Set<net.Socket>();
  const recorder = { port: 0, connections: 0, close: () => Promise.resolve() };
  const server = net.createServer((socket) => {
    recorder.connections += 1;
    sockets.add(socket);
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.2', resolve);
  });
  recorder.port = (server.address() as AddressInfo).port;
  recorder.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return recorder;
}

/** Names this file's servers know, and where they point; unknown names do not resolve. */
function stubResolver(table: Record<string, string>): Resolver {
  return (name) => {
    const address = table[name];
    return address === undefined ? Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' })) : Promise.resolve([{ address, family: 4 }]);
  };
}

describe('egress policy (SSRF): e-mail channel destinations', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  let auditWorkers: RunningWorkers;
  let admin: SignedInUser;
  let mailbox: MailUser;
  let smtp: SmtpPeer;
  let internal: Recorder;
  const prefix = uniqueQueuePrefix();
  const owner = (): Knex => database.ownerDb;

  before(async function () {
    ensureMailServer();
    internal = await recordingListener();
    database = await createTestDatabase();
    const config = apiTestConfig(database.url, { BOTSERVER_FEATURES: 'email', BOTSERVER_EGRESS_ALLOW: '127.0.0.1/32', BOTSERVER_METRICS_TOKEN: METRICS_TOKEN });
    // The API's view of the names: `internal.test` is an internal address, `mail.test` the allowed peers' host.
    api = await startTestApi(config, prefix, { resolver: stubResolver({ 'internal.test': '127.0.0.2', 'mail.test': '127.0.0.1', 'rebind.test': '127.0.0.1' }) });
    auditWorkers = await startTestAuditWorker(config, prefix);
    admin = await signedInUser(api, 'admin', 'egress');
    mailbox = addMailUser('egress');
    smtp = await startSmtpPeer({ credentials: mailbox });
  });

  after(async function () {
    await signOutAll();
    await smtp?.stop();
    await api?.stop();
    await auditWorkers?.shutdown();
    await internal?.close();
    await database?.destroy();
  });

  const postBot = (email: Record<string, unknown>): ReturnType<typeof restJson> => restJson('POST', `${api.url}/api/bots`, { token: admin.token, body: { name: 'Egress bot', email } });

  function aimedAt(server: 'imap' | 'smtp', host: string, port = internal.port): Record<string, unknown> {
    const channel = channelFor(mailbox, smtp.port);
    channel[server] = { ...(channel[server] as Record<string, unknown>), host, port };
    return channel;
  }

  async function violations(): Promise<Array<{ target: string; details: Record<string, unknown> }>> {
    return owner()('audit_events').where({ type: 'security.violation' }).whereRaw("details->>'violation' = 'egress_denied'").orderBy('id').select('target', 'details');
  }

  const spellings = ['127.0.0.2', '2130706434', '[::ffff:127.0.0.2]', 'internal.test'];

  for (const host of spellings) {
    it(`an IMAP server at ${host}: 400 egress_denied naming email.imap.host, no connection, audited`, async () => {
      const before = (await violations()).length;
      const bots = await owner()('bots').count<Array<{ count: string }>>('* as count');
      const started = performance.now();
      const reply = await postBot(aimedAt('imap', host));
      const elapsed = performance.now() - started;
      console.log(`      (refused in ${elapsed.toFixed(0)} ms)`);
      expect(reply.status, reply.text).to.equal(400);
      expect(reply.body).to.include({ error: 'egress_denied', field: 'email.imap.host' });
      expect(Object.keys(reply.body).sort()).to.deep.equal(['error', 'field', 'message', 'requestId']);
      expect(internal.connections, 'connections the listener on 127.0.0.2 saw').to.equal(0);
      expect(await owner()('bots').count<Array<{ count: string }>>('* as count')).to.deep.equal(bots);
      const events = await waitFor(async () => {
        const found = await violations();
        return found.length > before ? found : false;
      });
      const event = events[events.length - 1];
      expect(event?.target).to.match(/^bot:[0-9a-f-]{36}$/);
      expect(event?.details).to.deep.include({ violation: 'egress_denied', field: 'email.imap.host', protocol: 'imap', reason: 'loopback', host });
    });
  }

  it('an SMTP server at an internal address is refused the same way (after the IMAP test passed)', async () => {
    const reply = await postBot(aimedAt('smtp', '127.0.0.2'));
    expect(reply.status, reply.text).to.equal(400);
    expect(reply.body).to.include({ error: 'egress_denied', field: 'email.smtp.host' });
    expect(internal.connections).to.equal(0);
  });

  it('counts refusals in /metrics', async () => {
    const response = await fetch(`${api.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    const text = await response.text();
    const imap = /^botserver_egress_denied_total\{protocol="imap",reason="loopback"\} (\d+)$/m.exec(text);
    const smtpLine = /^botserver_egress_denied_total\{protocol="smtp",reason="loopback"\} (\d+)$/m.exec(text);
    expect(Number(imap?.[1])).to.equal(spellings.length);
    expect(Number(smtpLine?.[1])).to.equal(1);
  });

  it('the allowed peers keep working: by address and by a name that resolves to an allowed address', async () => {
    const byAddress = await postBot(channelFor(mailbox, smtp.port));
    expect(byAddress.status, byAddress.text).to.equal(201);
    const byName = channelFor(mailbox, smtp.port);
    byName.imap = { ...(byName.imap as Record<string, unknown>), host: 'mail.test', port: IMAP_PORT };
    byName.smtp = { ...(byName.smtp as Record<string, unknown>), host: 'mail.test' };
    const named = await postBot(byName);
    expect(named.status, named.text).to.equal(201);
    expect(internal.connections).to.equal(0);
  });

  it('a name that does not resolve is still `unreachable` (email_connection_failed), not a refusal', async () => {
    const reply = await postBot(aimedAt('imap', 'nowhere.test', IMAP_PORT));
    expect(reply.status, reply.text).to.equal(400);
    expect(reply.body.error).to.equal('email_connection_failed');
    expect(String(reply.body.message)).to.include('unreachable');
  });

  describe('the e-mail worker checks again on every connection (DNS rebinding)', () => {
    let worker: Kernel | undefined;
    let rebound: Recorder;
    // Where the name leads after rebinding: the IMAP port on 127.0.0.2 (Dovecot listens on 127.0.0.1 only).
    before(async () => {
      rebound = await recordingListener(IMAP_PORT);
    });
    after(async () => {
      await worker?.close();
      await rebound?.close();
    });

    it('a saved channel whose name now resolves to an internal address is never connected to, and is audited', async () => {
      const channel = channelFor(mailbox, smtp.port);
      channel.imap = { ...(channel.imap as Record<string, unknown>), host: 'rebind.test' };
      const saved = await postBot(channel);
      expect(saved.status, saved.text).to.equal(201);
      const botId = String(saved.body.id);
      // The worker's resolver answers the same name with the internal address.
      worker = createKernel(api.config, 'email', { queuePrefix: prefix, resolver: stubResolver({ 'rebind.test': '127.0.0.2' }) });
      startEmailWorker(worker, { scanMs: 200, leaseMs: 3000, pollMs: 2000, backoffMs: 200, maxBackoffMs: 1000 });
      const event = await waitFor(async () => (await violations()).find((row) => row.target === `bot:${botId}`) ?? false, 20_000);
      expect(event.details).to.deep.include({ violation: 'egress_denied', field: 'email.imap.host', protocol: 'imap', reason: 'loopback', host: 'rebind.test' });
      // Retries do not add an event per attempt, and none of them connects.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(rebound.connections, 'connections to 127.0.0.2:IMAP').to.equal(0);
      expect((await violations()).filter((row) => row.target === `bot:${botId}`)).to.have.length(1);
    });
  });
});
