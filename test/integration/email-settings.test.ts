import { expect } from 'chai';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { restJson, signedInUser, signOutAll, type SignedInUser } from '../helpers/chat.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { addMailUser, channelFor, ensureMailServer, startSmtpPeer, type MailUser, type SmtpPeer } from '../helpers/mail.js';

describe('e-mail channel settings (POST/PATCH /api/bots `email`)', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  let plainApi: TestApi;
  let admin: SignedInUser;
  let plainAdmin: SignedInUser;
  let mailbox: MailUser;
  let smtp: SmtpPeer;

  before(async function () {
    ensureMailServer();
    database = await createTestDatabase();
    api = await startTestApi(apiTestConfig(database.url, { BOTSERVER_FEATURES: 'email' }));
    plainApi = await startTestApi(apiTestConfig(database.url));
    admin = await signedInUser(api, 'admin', 'email-settings');
    plainAdmin = await signedInUser(plainApi, 'admin', 'email-settings-off');
    mailbox = addMailUser('settings');
    smtp = await startSmtpPeer({ credentials: mailbox });
  });

  after(async function () {
    await signOutAll();
    await smtp?.stop();
    await api?.stop();
    await plainApi?.stop();
    await database?.destroy();
  });

  const post = (body: Record<string, unknown>, as = admin, on = api): ReturnType<typeof restJson> => restJson('POST', `${on.url}/api/bots`, { token: as.token, body: { name: 'Mail bot', ...body } });

  it('stores the channel sealed, shows only that one is configured, and indexes the address blindly', async () => {
    const reply = await post({ email: channelFor(mailbox, smtp.port) });
    expect(reply.status, reply.text).to.equal(201);
    expect(reply.body.email).to.deep.equal({ configured: true });
    expect(reply.text).not.to.include(mailbox.password);
    expect(reply.text).not.to.include(mailbox.address);
    const row = (await database.ownerDb('bots').where({ id: reply.body.id }).first()) as { email_channel_ciphertext: string; email_address_index: string };
    expect(row.email_channel_ciphertext).to.be.a('string').and.not.include(mailbox.password);
    expect(row.email_channel_ciphertext).not.to.include(mailbox.address);
    expect(row.email_address_index).to.match(/^[0-9a-f]{64}$/);
    const read = await restJson('GET', `${api.url}/api/bots/${String(reply.body.id)}`, { token: admin.token });
    expect(read.body.email).to.deep.equal({ configured: true });
    expect(read.text).not.to.include(mailbox.password);
  });

  it('a wrong IMAP password: 400 email_connection_failed (auth_failed), nothing stored', async () => {
    const before = await database.ownerDb('bots').count<Array<{ count: string }>>('* as count');
    const reply = await post({ email: channelFor({ address: mailbox.address, password: 'wrong-password' }, smtp.port) });
    expect(reply.status, reply.text).to.equal(400);
    expect(reply.body.error).to.equal('email_connection_failed');
    expect(String(reply.body.message)).to.include('auth_failed');
    expect(reply.text).not.to.include('wrong-password');
    const after = await database.ownerDb('bots').count<Array<{ count: string }>>('* as count');
    expect(after[0]?.count).to.equal(before[0]?.count);
  });

  it('a wrong SMTP password: auth_failed; an unreachable host: unreachable; TLS against a plain server: tls_failed', async () => {
    const badSmtp = channelFor(mailbox, smtp.port);
    (badSmtp.smtp as Record<string, unknown>).pass = 'nope-nope';
    const auth = await post({ email: badSmtp });
    expect(auth.status, auth.text).to.equal(400);
    expect(String(auth.body.message)).to.match(/SMTP.*auth_failed/);

    const unreachable = channelFor(mailbox, smtp.port);
    (unreachable.imap as Record<string, unknown>).port = 1;
    const down = await post({ email: unreachable });
    expect(down.status, down.text).to.equal(400);
    expect(String(down.body.message)).to.include('unreachable');

    const tls = channelFor(mailbox, smtp.port);
    (tls.imap as Record<string, unknown>).secure = true;
    const tlsReply = await post({ email: tls });
    expect(tlsReply.status, tlsReply.text).to.equal(400);
    expect(String(tlsReply.body.message)).to.include('tls_failed');
  });

  it('PATCH replaces or removes the channel; invalid settings are 400 invalid_request', async () => {
    const created = await post({});
    const id = String(created.body.id);
    const patched = await restJson('PATCH', `${api.url}/api/bots/${id}`, { token: admin.token, body: { email: channelFor(mailbox, smtp.port) } });
    expect(patched.status, patched.text).to.equal(200);
    expect(patched.body.email).to.deep.equal({ configured: true });
    const removed = await restJson('PATCH', `${api.url}/api/bots/${id}`, { token: admin.token, body: { email: null } });
    expect(removed.body.email).to.equal(null);
    const invalid = await restJson('PATCH', `${api.url}/api/bots/${id}`, { token: admin.token, body: { email: { ...channelFor(mailbox, smtp.port), address: 'not an address' } } });
    expect(invalid.status).to.equal(400);
    expect(invalid.body.error).to.equal('invalid_request');
    const injected = channelFor(mailbox, smtp.port);
    (injected.imap as Record<string, unknown>).host = '127.0.0.1\r\nX: y';
    expect((await restJson('PATCH', `${api.url}/api/bots/${id}`, { token: admin.token, body: { email: injected } })).status).to.equal(400);
  });

  it('without the email feature the field is 409 feature_disabled', async () => {
    const reply = await post({ email: channelFor(mailbox, smtp.port) }, plainAdmin, plainApi);
    expect(reply.status, reply.text).to.equal(409);
    expect(reply.body.error).to.equal('feature_disabled');
  });
});
