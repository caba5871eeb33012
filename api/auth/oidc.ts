import type { NextFunction, Request, RequestHandler, Response } from 'express';
import * as client from 'openid-client';
import { Strategy, type AuthenticateOptions } from 'openid-client/passport';
import passport from 'passport';
import { effectiveOidcRoles, type OidcIdentity } from '../../shared/accounts/index.js';
import { UnavailableError } from '../../shared/errors.js';
import type { Kernel } from '../../shared/kernel.js';
import { log } from '../../shared/log/index.js';

/** Zitadel's project role claim: `{ "<role>": { "<orgId>": "<org domain>" }, ... }`. */
export const ZITADEL_ROLES_CLAIM = 'urn:zitadel:iam:org:project:roles';
export const OIDC_SCOPE = `openid email profile ${ZITADEL_ROLES_CLAIM}`;
export const OIDC_LOGIN_PATH = '/auth/oidc/login';
export const OIDC_CALLBACK_PATH = '/auth/oidc/callback';

const STRATEGY_NAME = 'oidc';
/** Where the strategy keeps the PKCE verifier, state and nonce inside the flow session. */
const FLOW_SESSION_KEY = 'oidc';
const DISCOVERY_TIMEOUT_SECONDS = 10;
const DISCOVERY_RETRY_MS = 30_000;

/** Why an OIDC login was refused: short, stable codes for the audit trail (never a library message). */
export type OidcFailureReason =
  | 'state_missing'
  | 'state_mismatch'
  | 'issuer_mismatch'
  | 'audience_mismatch'
  | 'nonce_mismatch'
  | 'id_token_expired'
  | 'id_token_time'
  | 'id_token_missing'
  | 'id_token_invalid'
  | 'bad_signature'
  | 'invalid_grant'
  | 'token_error'
  | 'provider_error'
  | 'invalid_response'
  | 'userinfo_failed'
  | 'oidc_error';

export type OidcCallbackOutcome = { ok: true; identity: OidcIdentity } | { ok: false; reason: OidcFailureReason };

interface OidcAuthenticateOptions extends AuthenticateOptions {
  /** Which of our two routes is calling: only /auth/oidc/login may start an authorization request. */
  phase: 'login' | 'callback';
}

/**
 * openid-client's passport strategy with two changes: every authorization request carries a fresh `state` and
 * `nonce` besides PKCE S256 (the stock strategy adds neither when the provider supports PKCE), which the strategy
 * then stores in the flow session and demands back; and a request starts a new authorization only on the login
 * route, never because a callback arrived without parameters.
 */
class OidcStrategy extends Strategy {
  override authorizationRequestParams<TOptions extends AuthenticateOptions>(req: Request, options: TOptions): URLSearchParams {
    const params = new URLSearchParams(super.authorizationRequestParams(req, options));
    params.set('state', client.randomState());
    params.set('nonce', client.randomNonce());
    return params;
  }

  override shouldInitiateAuthRequest<TOptions extends AuthenticateOptions>(_req: Request, _currentUrl: URL, options: TOptions): boolean {
    return (options as Partial<OidcAuthenticateOptions>).phase === 'login';
  }
}

/** What the strategy hands over after openid-client validated the token response and its ID token. */
class ValidatedTokens {
  readonly claims: client.IDToken | undefined;
  readonly accessToken: string;

  constructor(claims: client.IDToken | undefined, accessToken: string) {
    this.claims = claims;
    this.accessToken = accessToken;
  }
}

interface Ready {
  config: client.Configuration;
  authenticator: passport.Authenticator;
  strategy: OidcStrategy;
}

type PassportOutcome = { kind: 'success'; tokens: ValidatedTokens } | { kind: 'fail'; providerDenied: boolean } | { kind: 'error'; error: unknown };

/**
 * OIDC login (authorization code + PKCE S256 + state + nonce) against the issuer named by ZITADEL_DOMAIN,
 * through passport and `openid-client/passport`. The issuer is discovered once at start (retried at most every
 * 30 s while it fails). ID tokens are checked for signature (against the issuer's JWKS), issuer, audience,
 * nonce and expiry by openid-client; plain-HTTP issuers are accepted only outside production.
 */
export class OidcLogin {
  private readonly kernel: Kernel;
  private readonly settings: NonNullable<Kernel['config']['oidc']>;
  private ready: Ready | undefined;
  private discovering: Promise<Ready | undefined> | undefined;
  private lastAttempt = 0;

  constructor(kernel: Kernel, settings: NonNullable<Kernel['config']['oidc']>) {
    this.kernel = kernel;
    this.settings = settings;
  }

  /** Discovers the issuer; a failure is logged and leaves the routes answering 503 until a retry succeeds. */
  async start(): Promise<boolean> {
    return (await this.discover()) !== undefined;
  }

  private discover(): Promise<Ready | undefined> {
    this.lastAttempt = Date.now();
    this.discovering ??= this.runDiscovery().finally(() => {
      this.discovering = undefined;
    });
    return this.discovering;
  }

  private async runDiscovery(): Promise<Ready | undefined> {
    const { issuer, clientId, clientSecret } = this.settings;
    const execute: Array<(config: client.Configuration) => void> = [client.enableNonRepudiationChecks];
    if (!this.kernel.config.production) execute.unshift(client.allowInsecureRequests);
    try {
      const auth = clientSecret === undefined ? client.None() : client.ClientSecretBasic(clientSecret);
      const config = await client.discovery(new URL(issuer), clientId, undefined, auth, { execute, timeout: DISCOVERY_TIMEOUT_SECONDS });
      const strategy = new OidcStrategy({ config, name: STRATEGY_NAME, sessionKey: FLOW_SESSION_KEY, scope: OIDC_SCOPE }, (tokens, verified) => {
        verified(null, new ValidatedTokens(tokens.claims(), tokens.access_token));
      });
      const authenticator = new passport.Passport();
      authenticator.use(STRATEGY_NAME, strategy);
      this.ready = { config, authenticator, strategy };
      log.info('oidc issuer discovered', { issuer: config.serverMetadata().issuer });
      return this.ready;
    } catch (error) {
      log.error('oidc issuer discovery failed; OIDC login is unavailable until it succeeds', { issuer, reason: describeError(error) });
      return undefined;
    }
  }

  private async whenReady(): Promise<Ready> {
    if (this.ready !== undefined) return this.ready;
    const ready = Date.now() - this.lastAttempt >= DISCOVERY_RETRY_MS ? await this.discover() : await this.discovering;
    if (ready === undefined) throw new UnavailableError('OIDC login is not available right now');
    return ready;
  }

  /** The redirect URI of this API as the browser reaches it (X-Forwarded-* only through a trusted proxy). */
  private callbackUrl(ready: Ready, req: Request): URL {
    return new URL(OIDC_CALLBACK_PATH, ready.strategy.currentUrl(req));
  }

  /** Redirects the browser to the provider; the verifier, state and nonce stay in the (fresh) flow session. */
  async beginLogin(req: Request, res: Response, next: NextFunction): Promise<void> {
    const ready = await this.whenReady();
    const options: OidcAuthenticateOptions = { phase: 'login', session: false, callbackURL: this.callbackUrl(ready, req) };
    const middleware = ready.authenticator.authenticate(STRATEGY_NAME, options, (error: unknown) => {
      log.warn('oidc authorization request failed', { reason: describeError(error) });
      next(new UnavailableError('OIDC login is not available right now'));
    }) as RequestHandler;
    await middleware(req, res, next);
  }

  /** Validates the provider's answer (state, code with PKCE, ID token) and reads the identity from the claims. */
  async completeLogin(req: Request, res: Response): Promise<OidcCallbackOutcome> {
    const ready = await this.whenReady();
    const options: OidcAuthenticateOptions = { phase: 'callback', session: false, callbackURL: this.callbackUrl(ready, req) };
    const outcome = await new Promise<PassportOutcome>((resolve) => {
      const middleware = ready.authenticator.authenticate(STRATEGY_NAME, options, (error: unknown, user: unknown, info: unknown) => {
        if (error !== null && error !== undefined) resolve({ kind: 'error', error });
        else if (user instanceof ValidatedTokens) resolve({ kind: 'success', tokens: user });
        else resolve({ kind: 'fail', providerDenied: typeof info === 'object' && info !== null && 'error' in info });
      }) as RequestHandler;
      void Promise.resolve(middleware(req, res, (error?: unknown) => resolve({ kind: 'error', error }))).catch((error: unknown) => resolve({ kind: 'error', error }));
    });
    if (outcome.kind === 'error') return { ok: false, reason: classifyOidcError(outcome.error) };
    // The strategy fails (rather than errs) when the flow session holds no verifier (no or spent flow cookie),
    // or when the provider answered access_denied.
    if (outcome.kind === 'fail') return { ok: false, reason: outcome.providerDenied ? 'provider_error' : 'state_missing' };
    return this.identityOf(ready, outcome.tokens);
  }

  private async identityOf(ready: Ready, tokens: ValidatedTokens): Promise<OidcCallbackOutcome> {
    const claims = tokens.claims;
    if (claims === undefined) return { ok: false, reason: 'id_token_missing' };
    let email = stringClaim(claims.email);
    let emailVerified = booleanClaim(claims.email_verified);
    let rolesClaim: unknown = claims[ZITADEL_ROLES_CLAIM];
    if (email === undefined || rolesClaim === undefined) {
      // Zitadel puts profile data and roles into the ID token only when the application asks for it; else
      // they come from userinfo (bound to the same subject by openid-client).
      try {
        const info = await client.fetchUserInfo(ready.config, tokens.accessToken, claims.sub);
        if (email === undefined) {
          email = stringClaim(info.email);
          emailVerified = booleanClaim(info.email_verified);
        }
        rolesClaim ??= info[ZITADEL_ROLES_CLAIM];
      } catch (error) {
        log.warn('oidc userinfo request failed', { reason: describeError(error) });
        return { ok: false, reason: 'userinfo_failed' };
      }
    }
    return {
      ok: true,
      identity: { issuer: claims.iss, subject: claims.sub, email, emailVerified, roles: zitadelRoles(rolesClaim) },
    };
  }
}

/** `email_verified` as the provider sent it; anything but a JSON boolean counts as not sent. */
function booleanClaim(value: unknown): boolean | undefined {
  return typeof value === 'boolean' ? value : undefined;
}

function stringClaim(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/** Our roles from Zitadel's role claim (its keys): unknown names are ignored, none at all gives `user`. */
export function zitadelRoles(claim: unknown): ReturnType<typeof effectiveOidcRoles> {
  const names = typeof claim === 'object' && claim !== null && !Array.isArray(claim) ? Object.keys(claim) : [];
  return effectiveOidcRoles(names);
}

function causeOf(error: unknown): unknown {
  return error instanceof Error ? error.cause : undefined;
}

/** The claim a failed JWT comparison or timestamp check was about (oauth4webapi puts it in the error's cause). */
function failedClaim(error: unknown): unknown {
  const detail = causeOf(causeOf(error));
  return typeof detail === 'object' && detail !== null && 'claim' in detail ? detail.claim : undefined;
}

/** Maps what openid-client throws to a short reason; its messages (which may quote claims) never leave here. */
export function classifyOidcError(error: unknown): OidcFailureReason {
  if (error instanceof client.AuthorizationResponseError) return 'provider_error';
  if (error instanceof client.ResponseBodyError) return error.error === 'invalid_grant' ? 'invalid_grant' : 'token_error';
  if (error instanceof client.WWWAuthenticateChallengeError) return 'token_error';
  if (!(error instanceof client.ClientError)) return 'oidc_error';
  switch (error.code) {
    case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED': {
      const claim = failedClaim(error);
      if (claim === 'iss') return 'issuer_mismatch';
      if (claim === 'aud' || claim === 'azp') return 'audience_mismatch';
      if (claim === 'nonce') return 'nonce_mismatch';
      return 'id_token_invalid';
    }
    case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
      return failedClaim(error) === 'exp' ? 'id_token_expired' : 'id_token_time';
    case 'OAUTH_KEY_SELECTION_FAILED':
      return 'bad_signature';
    case 'OAUTH_INVALID_RESPONSE': {
      const cause = causeOf(error);
      const message = cause instanceof Error ? cause.message : '';
      const missing = /^JWT "([a-z_]+)" \(.*\) claim missing$/.exec(message)?.[1];
      if (missing !== undefined) return missing === 'nonce' ? 'nonce_mismatch' : missing === 'iss' ? 'issuer_mismatch' : 'id_token_invalid';
      if (message.includes('"state"')) return 'state_mismatch';
      if (message.includes('"iss"')) return 'issuer_mismatch';
      if (message.includes('signature') || message.includes('"alg"')) return 'bad_signature';
      return 'invalid_response';
    }
    default:
      return 'oidc_error';
  }
}

/** For logs: the error's class and code, never its message (which may quote tokens or claims). */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return typeof error;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? `${error.name}:${code}` : error.name;
}
