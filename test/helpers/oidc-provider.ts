import { createHash, randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express } from 'express';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

/** Zitadel's project role claim (and the scope that asks for it). */
export const ZITADEL_ROLES = 'urn:zitadel:iam:org:project:roles';
const TEST_ORG_ID = '170000000000000001';
const TEST_ORG_DOMAIN = 'test-org.zitadel.test';

/** The person the provider logs in on the next authorization request. */
export interface OidcTestAccount {
  sub: string;
  email?: string | undefined;
  /** The `email_verified` claim sent with `email` (default false); null sends none. */
  emailVerified?: boolean | null;
  /** Zitadel project role names; sent as `{ "<role>": { "<orgId>": "<domain>" } }`. Omit to send no role claim. */
  roles?: string[] | undefined;
  /** When true, the provider answers the next authorization request with `error=access_denied`. */
  deny?: boolean;
}

export interface TestOidcProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  setAccount(account: OidcTestAccount): void;
  /** Registers one more redirect URI for the client (an API under test learns its port only when it listens). */
  allowRedirectUri(uri: string): void;
  stop(): Promise<void>;
}

// ---- the parts of oidc-provider 9 used here (the package ships no type declarations) ----

interface InteractionDetails {
  uid: string;
  prompt: { name: string; details: { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> } };
  params: { client_id?: unknown };
  session?: { accountId?: string };
  grantId?: string;
}

interface ProviderGrant {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(indicator: string, scope: string): void;
  save(): Promise<string>;
}

interface ProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options?: { mergeWithLastSubmission?: boolean }): Promise<void>;
  Grant: { new (init: { accountId: string; clientId: string }): ProviderGrant; find(id: string): Promise<ProviderGrant | undefined> };
  Client: { prototype: { redirectUriAllowed: (this: unknown, value: string) => boolean } };
  on(event: string, listener: (...args: unknown[]) => void): void;
}

type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;

async function loadProvider(): Promise<ProviderConstructor> {
  // A non-literal specifier: the package has no types, and this module declares the few it uses itself.
  const specifier = 'oidc-provider';
  const loaded = (await import(specifier)) as { default: ProviderConstructor };
  return loaded.default;
}

// ---- small shared pieces ----

async function listen(app: Express): Promise<{ server: http.Server; origin: string }> {
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function close(server: http.Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

async function signingKey(kid: string): Promise<{ privateKey: CryptoKey; publicJwk: JWK; privateJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const meta = { kid, alg: 'RS256', use: 'sig' };
  return { privateKey, publicJwk: { ...(await exportJWK(publicKey)), ...meta }, privateJwk: { ...(await exportJWK(privateKey)), ...meta } };
}

function rolesClaim(roles: string[]): Record<string, Record<string, string>> {
  return Object.fromEntries(roles.map((role) => [role, { [TEST_ORG_ID]: TEST_ORG_DOMAIN }]));
}

function accountClaims(account: OidcTestAccount): Record<string, unknown> {
  return {
    sub: account.sub,
    ...(account.email === undefined ? {} : { email: account.email, ...(account.emailVerified === null ? {} : { email_verified: account.emailVerified ?? false }) }),
    name: `Test ${account.sub}`,
    ...(account.roles === undefined ? {} : { [ZITADEL_ROLES]: rolesClaim(account.roles) }),
  };
}

/**
 * A real `oidc-provider` 9 on 127.0.0.1 (free port) with one confidential client (code flow, PKCE required,
 * client_secret_basic), an RS256 key, Zitadel-shaped role claims in the ID token, and its own interaction routes
 * that log the configured test account in and grant consent without a page (devInteractions off).
 */
export async function startOidcProvider(): Promise<TestOidcProvider> {
  const Provider = await loadProvider();
  const app = express();
  const { server, origin } = await listen(app);
  const issuer = origin;
  const clientId = `botserver-test-${randomBytes(4).toString('hex')}`;
  const clientSecret = randomBytes(32).toString('hex');
  const key = await signingKey('test-provider-1');
  const redirectUris = new Set<string>();
  let account: OidcTestAccount = { sub: 'test-subject', email: 'oidc-user@example.test', emailVerified: true, roles: ['user'] };

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        // Registered as the API under test comes up (allowRedirectUri); this placeholder is never used.
        redirect_uris: ['http://127.0.0.1/unused-placeholder'],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [key.privateJwk] },
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      [ZITADEL_ROLES]: [ZITADEL_ROLES],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', ZITADEL_ROLES],
    conformIdTokenClaims: false,
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: (_ctx: unknown, sub: string) =>
      sub === account.sub ? { accountId: sub, claims: () => Promise.resolve(accountClaims(account)) } : undefined,
  });

  const allowed = provider.Client.prototype.redirectUriAllowed;
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(this: unknown, value: string): boolean {
    return redirectUris.has(value) || allowed.call(this, value);
  };

  app.get('/interaction/:uid', async (req, res) => {
    const details = await provider.interactionDetails(req, res);
    if (account.deny === true) {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'The test account said no' }, { mergeWithLastSubmission: false });
      return;
    }
    if (details.prompt.name === 'login') {
      await provider.interactionFinished(req, res, { login: { accountId: account.sub } }, { mergeWithLastSubmission: false });
      return;
    }
    const accountId = details.session?.accountId ?? account.sub;
    const grant = details.grantId === undefined ? undefined : await provider.Grant.find(details.grantId);
    const consent = grant ?? new provider.Grant({ accountId, clientId: String(details.params.client_id) });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope !== undefined) consent.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims !== undefined) consent.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) consent.addResourceScope(indicator, scopes.join(' '));
    const grantId = await consent.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  });
  app.use(provider.callback());

  return {
    issuer,
    clientId,
    clientSecret,
    setAccount(next) {
      account = { ...next };
    },
    allowRedirectUri(uri) {
      redirectUris.add(uri);
    },
    stop: () => close(server),
  };
}

// ---- an issuer whose token endpoint hands out crafted ID tokens ----

/** What the crafted issuer puts into (or how it signs) the next ID token. */
export type CraftedIdToken = 'valid' | 'wrong_key' | 'wrong_issuer' | 'wrong_audience' | 'wrong_nonce' | 'no_nonce' | 'expired' | 'alg_none' | 'hs256_client_secret';

export interface CraftedIssuer {
  issuer: string;
  clientId: string;
  clientSecret: string;
  setAccount(account: OidcTestAccount): void;
  setIdToken(kind: CraftedIdToken): void;
  stop(): Promise<void>;
}

function base64url(value: Buffer | string): string {
  return Buffer.from(value).toString('base64url');
}

/** client_secret_basic (RFC 6749 §2.3.1): both parts form-urlencoded, then Base64. */
function basicCredentialsMatch(header: string | undefined, clientId: string, clientSecret: string): boolean {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? '');
  if (match?.[1] === undefined) return false;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  const formDecode = (value: string): string => decodeURIComponent(value.replaceAll('+', ' '));
  return formDecode(decoded.slice(0, colon)) === clientId && formDecode(decoded.slice(colon + 1)) === clientSecret;
}

interface PendingCode {
  clientId: string;
  redirectUri: string;
  codeChallenge: string;
  nonce: string | undefined;
}

/**
 * A minimal but honest OIDC issuer (discovery, JWKS, authorization endpoint that approves at once, token endpoint
 * with client authentication, single-use codes and PKCE S256 checks) whose ID tokens can be made wrong in one
 * chosen way: signed by a key that is not in its JWKS (same kid), unsigned, HS256 with the client secret, another
 * issuer or audience, another nonce, or expired. It lets a test prove that the API refuses each of them on the
 * real callback path.
 */
export async function startCraftedIssuer(): Promise<CraftedIssuer> {
  const app = express();
  const { server, origin: issuer } = await listen(app);
  const clientId = `crafted-client-${randomBytes(4).toString('hex')}`;
  const clientSecret = randomBytes(32).toString('hex');
  const kid = 'crafted-1';
  const key = await signingKey(kid);
  const impostor = await signingKey(kid);
  const codes = new Map<string, PendingCode>();
  let account: OidcTestAccount = { sub: 'crafted-subject', email: 'crafted@example.test', emailVerified: true, roles: ['user'] };
  let kind: CraftedIdToken = 'valid';

  app.get('/.well-known/openid-configuration', (_req, res) => {
    res.json({
      issuer,
      authorization_endpoint: `${issuer}/authorize`,
      token_endpoint: `${issuer}/token`,
      userinfo_endpoint: `${issuer}/userinfo`,
      jwks_uri: `${issuer}/jwks`,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic'],
      scopes_supported: ['openid', 'email', 'profile', ZITADEL_ROLES],
      authorization_response_iss_parameter_supported: true,
    });
  });
  app.get('/jwks', (_req, res) => {
    res.json({ keys: [key.publicJwk] });
  });

  app.get('/authorize', (req, res) => {
    const query = req.query as Record<string, string | undefined>;
    const redirectUri = query.redirect_uri;
    if (query.client_id !== clientId || redirectUri === undefined || query.response_type !== 'code' || query.code_challenge_method !== 'S256' || query.code_challenge === undefined) {
      res.status(400).json({ error: 'invalid_request' });
      return;
    }
    const code = randomBytes(24).toString('base64url');
    codes.set(code, { clientId, redirectUri, codeChallenge: query.code_challenge, nonce: query.nonce });
    const target = new URL(redirectUri);
    target.searchParams.set('code', code);
    if (query.state !== undefined) target.searchParams.set('state', query.state);
    target.searchParams.set('iss', issuer);
    res.redirect(302, target.href);
  });

  app.post('/token', express.urlencoded({ extended: false }), async (req, res) => {
    const body = req.body as Record<string, string | undefined>;
    if (!basicCredentialsMatch(req.get('authorization'), clientId, clientSecret)) {
      res.status(401).json({ error: 'invalid_client' });
      return;
    }
    const pending = body.code === undefined ? undefined : codes.get(body.code);
    if (body.code !== undefined) codes.delete(body.code);
    const verifier = body.code_verifier ?? '';
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    if (body.grant_type !== 'authorization_code' || pending === undefined || pending.redirectUri !== body.redirect_uri || pending.codeChallenge !== challenge) {
      res.status(400).json({ error: 'invalid_grant' });
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      ...accountClaims(account),
      iss: kind === 'wrong_issuer' ? 'http://issuer.invalid' : issuer,
      aud: kind === 'wrong_audience' ? 'some-other-client' : pending.clientId,
      iat: kind === 'expired' ? now - 7200 : now,
      exp: kind === 'expired' ? now - 3600 : now + 300,
      ...(kind === 'no_nonce' ? {} : { nonce: kind === 'wrong_nonce' ? 'not-the-nonce-of-this-flow' : pending.nonce }),
    };
    let idToken: string;
    if (kind === 'alg_none') {
      idToken = `${base64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url(JSON.stringify(claims))}.`;
    } else if (kind === 'hs256_client_secret') {
      idToken = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid }).sign(Buffer.from(clientSecret));
    } else {
      idToken = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(kind === 'wrong_key' ? impostor.privateKey : key.privateKey);
    }
    res.setHeader('Cache-Control', 'no-store');
    res.json({ access_token: randomBytes(24).toString('base64url'), token_type: 'Bearer', expires_in: 300, id_token: idToken, scope: 'openid email profile' });
  });

  return {
    issuer,
    clientId,
    clientSecret,
    setAccount(next) {
      account = { ...next };
    },
    setIdToken(next) {
      kind = next;
    },
    stop: () => close(server),
  };
}
