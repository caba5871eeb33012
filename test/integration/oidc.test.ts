import { expect } from 'chai';
import { apiTestConfig, createTestUser, startTestApi, startTestAuditWorker, type TestApi } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startCraftedIssuer, startOidcProvider, ZITADEL_ROLES, type CraftedIdToken, type CraftedIssuer, type OidcTestAccount, type TestOidcProvider } from '../helpers/oidc-provider.js';
import type { RunningWorkers } from '../../workers/main.js';

const CALLBACK_PATH = '/auth/oidc/callback';
const FLOW_COOKIE = 'botserver_oidc_flow';
const SESSION_COOKIE = 'botserver_session';
const FLOW_PREFIX = 'botserver:oidc-flow:';

// ---- a small browser: manual redirects and a cookie jar keyed like a browser's (host + path, not port) ----

interface StoredCookie {
  name: string;
  value: string;
  host: string;
  path: string;
  attributes: string[];
}

function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

function defaultPath(url: URL): string {
  const last = url.pathname.lastIndexOf('/');
  return last <= 0 ? '/' : url.pathname.slice(0, last);
}

class Browser {
  readonly cookies = new Map<string, StoredCookie>();
  /** Every Set-Cookie line the browser received, newest last. */
  readonly setCookieLines: string[] = [];

  async get(url: string | URL): Promise<Response> {
    const target = new URL(url);
    const cookie = [...this.cookies.values()]
      .filter((entry) => entry.host === target.hostname && pathMatches(target.pathname, entry.path))
      .map((entry) => `${entry.name}=${entry.value}`)
      .join('; ');
    const response = await fetch(target, { redirect: 'manual', headers: cookie === '' ? {} : { cookie } });
    for (const line of response.headers.getSetCookie()) this.store(target, line);
    return response;
  }

  cookie(name: string): StoredCookie | undefined {
    return [...this.cookies.values()].find((entry) => entry.name === name);
  }

  /** A copy sharing nothing with this one (the same cookies, then each goes its own way). */
  clone(): Browser {
    const copy = new Browser();
    for (const [key, entry] of this.cookies) copy.cookies.set(key, { ...entry });
    return copy;
  }

  private store(url: URL, line: string): void {
    this.setCookieLines.push(line);
    const [pair = '', ...rest] = line.split(';').map((part) => part.trim());
    const equals = pair.indexOf('=');
    const name = pair.slice(0, equals);
    const value = pair.slice(equals + 1);
    const attributes = rest;
    const attribute = (key: string): string | undefined =>
      attributes.find((item) => item.toLowerCase().startsWith(`${key.toLowerCase()}=`))?.slice(key.length + 1);
    const path = attribute('path') ?? defaultPath(url);
    const key = `${url.hostname}|${path}|${name}`;
    const maxAge = attribute('max-age');
    const expires = attribute('expires');
    const expired = (maxAge !== undefined && Number(maxAge) <= 0) || (expires !== undefined && Date.parse(expires) <= Date.now());
    if (expired) this.cookies.delete(key);
    else this.cookies.set(key, { name, value, host: url.hostname, path, attributes });
  }
}

function location(response: Response, base: string | URL): URL {
  const value = response.headers.get('location');
  if (value === null) throw new Error(`expected a redirect, got ${response.status}`);
  return new URL(value, base);
}

/** GET /auth/oidc/login: the authorization URL the API sends the browser to. */
async function beginLogin(browser: Browser, api: TestApi): Promise<URL> {
  const response = await browser.get(`${api.url}/auth/oidc/login`);
  expect(response.status, 'login redirects to the provider').to.equal(302);
  return location(response, api.url);
}

/** Follows the provider's redirects (login and consent interactions) until it sends the browser back to the API. */
async function throughProvider(browser: Browser, authorizationUrl: URL, api: TestApi): Promise<URL> {
  let url = authorizationUrl;
  for (let hop = 0; hop < 12; hop += 1) {
    const response = await browser.get(url);
    if (response.status !== 302 && response.status !== 303) {
      throw new Error(`the provider answered ${response.status} at ${url.pathname}: ${(await response.text()).slice(0, 300)}`);
    }
    const next = location(response, url);
    if (next.origin === new URL(api.url).origin && next.pathname === CALLBACK_PATH) return next;
    url = next;
  }
  throw new Error('the provider never redirected back to the API');
}

async function callbackUrlFor(browser: Browser, api: TestApi): Promise<URL> {
  return throughProvider(browser, await beginLogin(browser, api), api);
}

/** A whole login in a fresh browser; returns the callback response and the browser. */
async function fullLogin(api: TestApi): Promise<{ response: Response; browser: Browser; callback: URL }> {
  const browser = new Browser();
  const callback = await callbackUrlFor(browser, api);
  const response = await browser.get(callback);
  return { response, browser, callback };
}

async function me(api: TestApi, browser: Browser): Promise<{ status: number; body: { id?: string; email?: string; roles?: string[] } }> {
  const response = await browser.get(`${api.url}/api/me`);
  return { status: response.status, body: (await response.json()) as { id?: string; email?: string; roles?: string[] } };
}

function flowSid(browser: Browser): string {
  const cookie = browser.cookie(FLOW_COOKIE);
  if (cookie === undefined) throw new Error('no flow cookie');
  const match = /^s:([^.]+)\./.exec(decodeURIComponent(cookie.value));
  if (match?.[1] === undefined) throw new Error('unexpected flow cookie format');
  return match[1];
}

interface AuditRow {
  type: string;
  outcome: string;
  actor: string | null;
  details: Record<string, unknown>;
}

async function auditEvent(database: TestDatabase, requestId: string, type: string): Promise<AuditRow> {
  const deadline = Date.now() + 8000;
  for (;;) {
    const row = await database.ownerDb('audit_events').where({ request_id: requestId, type }).first<AuditRow | undefined>('type', 'outcome', 'actor', 'details');
    if (row !== undefined) return row;
    if (Date.now() > deadline) throw new Error(`no ${type} audit event for request ${requestId}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A 401 oidc_failed with the contract's error body (no library message, no stack) and its audit event. */
async function expectRefused(database: TestDatabase, response: Response, reason: string): Promise<void> {
  expect(response.status).to.equal(401);
  expect(response.headers.get('location')).to.equal(null);
  const body = (await response.json()) as Record<string, unknown>;
  expect(Object.keys(body).sort()).to.deep.equal(['error', 'message', 'requestId']);
  expect(body.error).to.equal('oidc_failed');
  expect(body.message).to.equal('The OIDC login could not be completed');
  expect(body.requestId).to.be.a('string');
  const event = await auditEvent(database, String(body.requestId), 'auth.login.failure');
  expect(event.outcome).to.equal('failure');
  expect(event.details).to.deep.equal({ method: 'oidc', reason });
}

function withParams(url: URL, change: (params: URLSearchParams) => void): URL {
  const copy = new URL(url);
  change(copy.searchParams);
  return copy;
}

let subjects = 0;
function account(overrides: Partial<OidcTestAccount> = {}): OidcTestAccount {
  subjects += 1;
  return { sub: `sub-${Date.now()}-${subjects}`, email: `oidc-${Date.now()}-${subjects}@example.test`, emailVerified: true, roles: ['user'], ...overrides };
}

describe('OIDC login', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let provider: TestOidcProvider;
  let api: TestApi;
  let auditWorker: RunningWorkers;

  before(async () => {
    database = await createTestDatabase();
    provider = await startOidcProvider();
    const prefix = uniqueQueuePrefix();
    const config = apiTestConfig(database.url, { ZITADEL_DOMAIN: provider.issuer, ZITADEL_CLIENT_ID: provider.clientId, ZITADEL_CLIENT_SECRET: provider.clientSecret });
    api = await startTestApi(config, prefix);
    provider.allowRedirectUri(`${api.url}${CALLBACK_PATH}`);
    auditWorker = await startTestAuditWorker(config, prefix);
  });

  after(async () => {
    await api?.stop();
    await auditWorker?.shutdown();
    await provider?.stop();
    await database?.destroy();
  });

  describe('with a real local provider', () => {
    it('sends the browser to the provider with PKCE S256, state, nonce and the Zitadel role scope', async () => {
      const browser = new Browser();
      const url = await beginLogin(browser, api);
      expect(url.origin).to.equal(provider.issuer);
      const params = url.searchParams;
      expect(params.get('response_type')).to.equal('code');
      expect(params.get('client_id')).to.equal(provider.clientId);
      expect(params.get('redirect_uri')).to.equal(`${api.url}${CALLBACK_PATH}`);
      expect(params.get('code_challenge_method')).to.equal('S256');
      expect(params.get('code_challenge')).to.match(/^[A-Za-z0-9_-]{43}$/);
      expect(params.get('state')).to.match(/^[A-Za-z0-9_-]{20,}$/);
      expect(params.get('nonce')).to.match(/^[A-Za-z0-9_-]{20,}$/);
      expect(params.get('scope')?.split(' ')).to.include.members(['openid', 'email', 'profile', ZITADEL_ROLES]);

      const line = browser.setCookieLines.find((entry) => entry.startsWith(`${FLOW_COOKIE}=`));
      expect(line, 'flow cookie').to.be.a('string');
      expect(line).to.match(/; Path=\/auth\/oidc(;|$)/);
      expect(line).to.match(/; HttpOnly(;|$)/);
      expect(line).to.match(/; SameSite=Lax(;|$)/);
      const ttl = await api.kernel.redis.ttl(`${FLOW_PREFIX}${flowSid(browser)}`);
      expect(ttl).to.be.within(1, 600);

      const again = await beginLogin(new Browser(), api);
      for (const name of ['state', 'nonce', 'code_challenge']) expect(again.searchParams.get(name)).to.not.equal(params.get(name));
    });

    it('logs in end to end, maps the Zitadel role, and finds the same user by issuer + subject next time', async () => {
      const person = account({ roles: ['admin'] });
      provider.setAccount(person);
      const started = Date.now();
      const { response, browser } = await fullLogin(api);
      const elapsed = Date.now() - started;
      expect(response.status).to.equal(302);
      expect(response.headers.get('location')).to.equal('/');
      console.log(`      (login -> provider -> callback took ${elapsed} ms)`);

      const sessionLine = browser.setCookieLines.find((entry) => entry.startsWith(`${SESSION_COOKIE}=`));
      expect(sessionLine).to.match(/; HttpOnly(;|$)/);
      expect(sessionLine).to.match(/; SameSite=Strict(;|$)/);
      expect(browser.cookie(FLOW_COOKIE), 'flow cookie cleared').to.equal(undefined);

      const first = await me(api, browser);
      expect(first.status).to.equal(200);
      expect(first.body.email).to.equal(person.email);
      expect(first.body.roles).to.deep.equal(['admin']);

      const row = await database.ownerDb('users').where({ id: first.body.id }).first<{ oidc_issuer: string; oidc_subject: string; password_hash: string | null; must_change_password: boolean; email_ciphertext: string }>();
      expect(row?.oidc_issuer).to.equal(provider.issuer);
      expect(row?.oidc_subject).to.equal(person.sub);
      expect(row?.password_hash).to.equal(null);
      expect(row?.must_change_password).to.equal(false);
      expect(row?.email_ciphertext).to.not.include(person.email);
      const requestId = response.headers.get('x-request-id') ?? '';
      const success = await auditEvent(database, requestId, 'auth.login.success');
      expect(success.actor).to.equal(first.body.id);
      expect(success.details).to.include({ method: 'oidc' });

      // The role was taken away at the provider: the next login has only `user`, for the same account.
      provider.setAccount({ ...person, roles: ['user'] });
      const secondStarted = Date.now();
      const second = await fullLogin(api);
      console.log(`      (second login, warm: ${Date.now() - secondStarted} ms)`);
      expect(second.response.status).to.equal(302);
      const after = await me(api, second.browser);
      expect(after.body.id).to.equal(first.body.id);
      expect(after.body.roles).to.deep.equal(['user']);
      const memberships = await database.ownerDb('memberships').where({ user_id: first.body.id }).select('role');
      expect(memberships).to.deep.equal([{ role: 'user' }]);
    });

    it('ignores unknown Zitadel roles, and gives `user` when none is granted (also via userinfo)', async () => {
      provider.setAccount(account({ roles: ['operator', 'iam-owner', 'superhero'] }));
      const mixed = await fullLogin(api);
      expect(mixed.response.status).to.equal(302);
      expect((await me(api, mixed.browser)).body.roles).to.deep.equal(['operator']);

      provider.setAccount(account({ roles: [] }));
      const none = await fullLogin(api);
      expect((await me(api, none.browser)).body.roles).to.deep.equal(['user']);

      // No role claim in the ID token at all: the API asks userinfo, which has none either.
      provider.setAccount(account({ roles: undefined }));
      const absent = await fullLogin(api);
      expect(absent.response.status).to.equal(302);
      expect((await me(api, absent.browser)).body.roles).to.deep.equal(['user']);
    });

    it('links an existing local account only when the provider says the e-mail address is verified', async () => {
      const local = await createTestUser(api.config, { role: 'operator' });
      const person = account({ email: local.email, emailVerified: false, roles: ['operator'] });
      provider.setAccount(person);
      await expectRefused(database, (await fullLogin(api)).response, 'email_not_verified');
      const unlinked = await database.ownerDb('users').where({ id: local.id }).first<{ oidc_subject: string | null }>();
      expect(unlinked?.oidc_subject).to.equal(null);

      provider.setAccount({ ...person, emailVerified: true });
      const linked = await fullLogin(api);
      expect(linked.response.status).to.equal(302);
      const profile = await me(api, linked.browser);
      expect(profile.body.id).to.equal(local.id);
      expect(profile.body.roles).to.deep.equal(['operator']);

      // Another identity claiming the same (now linked) address is refused.
      provider.setAccount(account({ email: local.email, emailVerified: true }));
      await expectRefused(database, (await fullLogin(api)).response, 'email_conflict');
    });

    it('refuses a new account when the provider says email_verified: false (BOTSERVER_OIDC_REQUIRE_VERIFIED_EMAIL, default true)', async () => {
      const person = account({ emailVerified: false });
      provider.setAccount(person);
      await expectRefused(database, (await fullLogin(api)).response, 'email_not_verified');
      expect(await database.ownerDb('users').where({ oidc_subject: person.sub }).first()).to.equal(undefined);
    });

    it('a provider that sends no email_verified: a new account is made, but an existing local account is never linked', async () => {
      const person = account({ emailVerified: null });
      provider.setAccount(person);
      expect((await fullLogin(api)).response.status).to.equal(302);
      expect(await database.ownerDb('users').where({ oidc_subject: person.sub }).first()).to.not.equal(undefined);

      const local = await createTestUser(api.config, { role: 'user' });
      provider.setAccount(account({ email: local.email, emailVerified: null }));
      await expectRefused(database, (await fullLogin(api)).response, 'email_not_verified');
      expect((await database.ownerDb('users').where({ id: local.id }).first<{ oidc_subject: string | null }>())?.oidc_subject).to.equal(null);
    });

    it('refuses a linked account that has been disabled here, whatever the provider says', async () => {
      const person = account({ roles: ['admin'] });
      provider.setAccount(person);
      expect((await fullLogin(api)).response.status).to.equal(302);
      await database.ownerDb('users').where({ oidc_subject: person.sub }).update({ disabled: true });
      await expectRefused(database, (await fullLogin(api)).response, 'account_disabled');
    });
  });

  describe('tampered callbacks', () => {
    beforeEach(() => provider.setAccount(account()));

    it('refuses a wrong state, and the flow cannot be retried afterwards', async () => {
      const browser = new Browser();
      const callback = await callbackUrlFor(browser, api);
      await expectRefused(database, await browser.get(withParams(callback, (p) => p.set('state', 'forged-state-value-000000000'))), 'state_mismatch');
      // The first answer ended the flow: the genuine callback now finds nothing to match.
      await expectRefused(database, await browser.get(callback), 'state_missing');
    });

    it('refuses a callback without state', async () => {
      const browser = new Browser();
      const callback = await callbackUrlFor(browser, api);
      await expectRefused(database, await browser.get(withParams(callback, (p) => p.delete('state'))), 'state_mismatch');
    });

    it('refuses a replayed callback, and a spent code even inside a fresh flow', async () => {
      const { response, browser, callback } = await fullLogin(api);
      expect(response.status).to.equal(302);
      await expectRefused(database, await browser.get(callback), 'state_missing');

      // A new flow in another browser, answered with the spent code (state and issuer of the new flow).
      const other = new Browser();
      const fresh = await callbackUrlFor(other, api);
      const replay = withParams(fresh, (p) => p.set('code', callback.searchParams.get('code') ?? ''));
      await expectRefused(database, await other.get(replay), 'invalid_grant');
    });

    it('refuses a code that belongs to another flow session', async () => {
      const alice = new Browser();
      const mallory = new Browser();
      const aliceCallback = await callbackUrlFor(alice, api);
      const malloryCallback = await callbackUrlFor(mallory, api);
      // Mallory's state matches her own flow session, but the code was issued to Alice's PKCE challenge.
      const swapped = withParams(malloryCallback, (p) => p.set('code', aliceCallback.searchParams.get('code') ?? ''));
      await expectRefused(database, await mallory.get(swapped), 'invalid_grant');
    });

    it('refuses a callback that arrives without the flow cookie (login CSRF)', async () => {
      const victim = new Browser();
      const attacker = new Browser();
      const attackerCallback = await callbackUrlFor(attacker, api);
      await expectRefused(database, await victim.get(attackerCallback), 'state_missing');
    });

    it('refuses the provider answering error=access_denied', async () => {
      provider.setAccount(account({ deny: true }));
      const browser = new Browser();
      const callback = await callbackUrlFor(browser, api);
      expect(callback.searchParams.get('error')).to.equal('access_denied');
      await expectRefused(database, await browser.get(callback), 'provider_error');
    });

    it('deletes the flow session from Redis once the callback has been answered', async () => {
      const browser = new Browser();
      const callback = await callbackUrlFor(browser, api);
      const key = `${FLOW_PREFIX}${flowSid(browser)}`;
      expect(await api.kernel.redis.exists(key)).to.equal(1);
      expect((await browser.get(callback)).status).to.equal(302);
      expect(await api.kernel.redis.exists(key)).to.equal(0);
    });
  });

  describe('ID token checks (an issuer that hands out crafted ID tokens)', () => {
    let crafted: CraftedIssuer;
    let craftedApi: TestApi;
    let craftedAudit: RunningWorkers;

    before(async () => {
      crafted = await startCraftedIssuer();
      const prefix = uniqueQueuePrefix();
      const config = apiTestConfig(database.url, { ZITADEL_DOMAIN: crafted.issuer, ZITADEL_CLIENT_ID: crafted.clientId, ZITADEL_CLIENT_SECRET: crafted.clientSecret });
      craftedApi = await startTestApi(config, prefix);
      craftedAudit = await startTestAuditWorker(config, prefix);
    });

    after(async () => {
      await craftedApi?.stop();
      await craftedAudit?.shutdown();
      await crafted?.stop();
    });

    async function loginWith(kind: CraftedIdToken, person: OidcTestAccount = account()): Promise<{ response: Response; browser: Browser }> {
      crafted.setIdToken(kind);
      crafted.setAccount(person);
      const { response, browser } = await fullLogin(craftedApi);
      return { response, browser };
    }

    it('accepts a correct ID token (so the refusals below are about the one thing changed)', async () => {
      const person = account({ roles: ['operator'] });
      const { response, browser } = await loginWith('valid', person);
      expect(response.status).to.equal(302);
      const profile = await me(craftedApi, browser);
      expect(profile.body.email).to.equal(person.email);
      expect(profile.body.roles).to.deep.equal(['operator']);
    });

    const cases: Array<[CraftedIdToken, string, string]> = [
      ['wrong_key', 'bad_signature', 'signed by a key that is not in the JWKS (same kid)'],
      ['alg_none', 'bad_signature', 'unsigned (alg none)'],
      ['hs256_client_secret', 'bad_signature', 'HS256 with the client secret as key'],
      ['wrong_issuer', 'issuer_mismatch', 'from another issuer'],
      ['wrong_audience', 'audience_mismatch', 'for another client'],
      ['wrong_nonce', 'nonce_mismatch', 'with another nonce'],
      ['no_nonce', 'nonce_mismatch', 'without nonce'],
      ['expired', 'id_token_expired', 'expired'],
    ];
    for (const [kind, reason, label] of cases) {
      it(`refuses an ID token ${label}`, async () => {
        const person = account({ roles: ['admin'] });
        const { response } = await loginWith(kind, person);
        await expectRefused(database, response, reason);
        const row = await database.ownerDb('users').where({ oidc_subject: person.sub }).first<{ id: string } | undefined>('id');
        expect(row, 'no account was made').to.equal(undefined);
      });
    }
  });

  describe('BOTSERVER_OIDC_REQUIRE_VERIFIED_EMAIL=false', () => {
    let lenient: TestApi;
    before(async () => {
      lenient = await startTestApi(apiTestConfig(database.url, {
        ZITADEL_DOMAIN: provider.issuer,
        ZITADEL_CLIENT_ID: provider.clientId,
        ZITADEL_CLIENT_SECRET: provider.clientSecret,
        BOTSERVER_OIDC_REQUIRE_VERIFIED_EMAIL: 'false',
      }));
      provider.allowRedirectUri(`${lenient.url}${CALLBACK_PATH}`);
    });
    after(async () => {
      await lenient?.stop();
    });

    it('an unverified address gets a new account, and is still never linked to a local one', async () => {
      const person = account({ emailVerified: false });
      provider.setAccount(person);
      expect((await fullLogin(lenient)).response.status).to.equal(302);
      expect(await database.ownerDb('users').where({ oidc_subject: person.sub }).first()).to.not.equal(undefined);

      const local = await createTestUser(lenient.config, { role: 'user' });
      provider.setAccount(account({ email: local.email, emailVerified: false }));
      expect((await fullLogin(lenient)).response.status).to.equal(401);
      expect((await database.ownerDb('users').where({ id: local.id }).first<{ oidc_subject: string | null }>())?.oidc_subject).to.equal(null);
    });
  });

  describe('configuration', () => {
    it('answers 503 and never redirects when the configured issuer does not match the one the provider states', async () => {
      const equivalent = provider.issuer.replace('127.0.0.1', 'localhost');
      // The provider is reachable under that name: the refusal is about the issuer value alone.
      const metadata = (await (await fetch(`${equivalent}/.well-known/openid-configuration`)).json()) as { issuer: string };
      expect(metadata.issuer).to.equal(provider.issuer);
      const mismatched = await startTestApi(apiTestConfig(database.url, { ZITADEL_DOMAIN: equivalent, ZITADEL_CLIENT_ID: provider.clientId, ZITADEL_CLIENT_SECRET: provider.clientSecret }));
      try {
        const response = await fetch(`${mismatched.url}/auth/oidc/login`, { redirect: 'manual' });
        expect(response.status).to.equal(503);
        expect(response.headers.get('location')).to.equal(null);
        expect(((await response.json()) as { error: string }).error).to.equal('unavailable');
      } finally {
        await mismatched.stop();
      }
    });

    it('has no OIDC routes (404 not_found) when ZITADEL_* are unset', async () => {
      const plain = await startTestApi(apiTestConfig(database.url));
      try {
        for (const path of ['/auth/oidc/login', `${CALLBACK_PATH}?code=x&state=y`]) {
          const response = await fetch(`${plain.url}${path}`, { redirect: 'manual' });
          expect(response.status, path).to.equal(404);
          expect(((await response.json()) as { error: string }).error).to.equal('not_found');
        }
      } finally {
        await plain.stop();
      }
    });
  });
});
