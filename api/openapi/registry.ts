import { z } from 'zod';
import type { Config } from '../../shared/config/index.js';
import { OIDC_CALLBACK_PATH, OIDC_LOGIN_PATH } from '../auth/oidc.js';
import { auditQuerySchema, auditVerifyRequestSchema } from '../routes/audit.js';
import { codeSchema, loginQuerySchema, loginSchema, logoutQuerySchema, passwordSchema, refreshSchema } from '../routes/auth.js';
import { BULL_BOARD_PATH } from '../routes/bullBoard.js';
import { createBotSchema, tryBotSchema, updateBotSchema } from '../routes/bots.js';
import { conversationListSchema, historySchema, sendSchema as messageBodySchema } from '../conversations/schema.js';
import { newUserSchema, updateUserSchema } from '../users/schema.js';
import { newDocumentSchema, searchQuerySchema } from '../knowledge/schema.js';
import * as out from './schemas.js';

/**
 * Every HTTP route of the API, with the zod schemas its handler parses. The OpenAPI document is built from this
 * list, and a test walks the Express app to prove that the list and the app name the same routes.
 */

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/**
 * Who may call: `public` anyone; `user` a signed-in account; `participant` the conversation's user, its guest
 * (guest token) or, to read, staff; `staff` admin or operator; `admin`; `cookie` a browser cookie session with its
 * CSRF header; `metrics` an admin's access token or the scrape token.
 */
export type Access = 'public' | 'user' | 'participant' | 'staff' | 'admin' | 'cookie' | 'metrics';

export interface ResponseSpec {
  status: number;
  description: string;
  /** Zod schema of a JSON body; omitted for an empty body or a non-JSON one (`contentType`). */
  schema?: z.ZodType;
  /** Media type of a non-JSON body (`text/html`, `text/plain`, ...). */
  contentType?: string;
}

export interface RouteSpec {
  method: HttpMethod;
  /** Express form (`/api/bots/:id`); for a mount, the prefix under which a sub-application answers. */
  path: string;
  summary: string;
  description?: string;
  tag: string;
  access: Access;
  /** Path parameter schemas; every `:name` without one is a UUID. */
  params?: Record<string, z.ZodType>;
  query?: z.ZodObject;
  /** A valid query, shown in the document (and used by the fuzz tests as a seed to mutate). */
  queryExample?: Record<string, string>;
  body?: z.ZodType;
  /** A valid body, shown in the document (and used by the fuzz tests as a seed to mutate). */
  bodyExample?: Record<string, unknown>;
  success: ResponseSpec;
  /** Failures beyond the standard ones (400 on bad input, 401, 403, 404 for ids, 413, 415, 429, 500). */
  failures?: ResponseSpec[];
  /** The path is a prefix: a sub-application (Bull Board) answers it and everything below it. */
  mount?: boolean;
  /** Not rate limited (health checks). */
  unlimited?: boolean;
  /** Present only with this configuration (the OIDC routes need an issuer). */
  when?: (config: Config) => boolean;
}

const oidcConfigured = (config: Config): boolean => config.oidc !== undefined;

/** Documentation of the query the OIDC provider sends back; openid-client checks it (state, PKCE, nonce, issuer). */
const oidcCallbackQuery = z.looseObject({
  code: z.string().optional(),
  state: z.string().optional(),
  iss: z.string().optional(),
  error: z.string().optional(),
  error_description: z.string().optional(),
});

export const ROUTES: readonly RouteSpec[] = [
  // health and operations
  { method: 'get', path: '/healthz', tag: 'operations', access: 'public', unlimited: true, summary: 'The process is alive', success: { status: 200, description: 'Alive', schema: out.healthSchema } },
  {
    method: 'get', path: '/readyz', tag: 'operations', access: 'public', unlimited: true, summary: 'Redis and PostgreSQL answer now',
    success: { status: 200, description: 'Ready', schema: out.readySchema },
    failures: [{ status: 503, description: 'A dependency is down (same body shape)', schema: out.readySchema }],
  },
  {
    method: 'get', path: '/metrics', tag: 'operations', access: 'metrics', summary: 'Prometheus metrics',
    description: 'HTTP, queue, socket and security counters. Bearer: an admin access token or BOTSERVER_METRICS_TOKEN.',
    success: { status: 200, description: 'Prometheus text exposition format', contentType: 'text/plain' },
  },
  { method: 'get', path: '/api/openapi.json', tag: 'operations', access: 'public', summary: 'This OpenAPI 3.1 document', success: { status: 200, description: 'The document', schema: out.openApiDocumentSchema } },
  {
    method: 'get', path: BULL_BOARD_PATH, tag: 'operations', access: 'admin', mount: true, summary: 'Bull Board for every queue',
    description: 'A sub-application: its page and its own JSON API live below this prefix. Anonymous browsers are redirected to `/`. Job data shows as the encrypted envelope.',
    success: { status: 200, description: 'The board page', contentType: 'text/html' },
    failures: [{ status: 302, description: 'Anonymous browser page request: redirect to /' }],
  },

  // web chat page
  { method: 'get', path: '/', tag: 'web chat', access: 'public', summary: 'The web chat page (login, bot list, chat)', success: { status: 200, description: 'HTML page', contentType: 'text/html' } },
  { method: 'get', path: '/assets/socket.io.min.js', tag: 'web chat', access: 'public', summary: "The Socket.IO browser client (the server's own version)", success: { status: 200, description: 'JavaScript', contentType: 'text/javascript' } },
  {
    method: 'get', path: '/assets/:file', tag: 'web chat', access: 'public', summary: "The page's static files",
    params: { file: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/).describe('A file name, e.g. app.js, app.css') },
    success: { status: 200, description: 'The file', contentType: 'application/octet-stream' },
  },
  { method: 'get', path: '/widget.js', tag: 'web chat', access: 'public', summary: 'The embed script: `<script src=".../widget.js" data-bot="<id>" async>` adds a chat bubble', success: { status: 200, description: 'JavaScript', contentType: 'text/javascript' } },
  {
    method: 'get', path: '/widget/:botId', tag: 'web chat', access: 'public', summary: "A public bot's widget frame; only the bot's allowedOrigins may frame it (CSP frame-ancestors)",
    success: { status: 200, description: 'HTML page', contentType: 'text/html' },
  },
  {
    method: 'get', path: '/auth/socket-token', tag: 'web chat', access: 'cookie', summary: 'A short-lived access token for the Socket.IO handshake',
    description: 'For the browser whose session is the HttpOnly cookie; requires the X-CSRF-Token header.',
    success: { status: 200, description: 'Token', schema: out.socketTokenSchema },
  },

  // authentication
  {
    method: 'post', path: '/auth/login', tag: 'auth', access: 'public', summary: 'Log in with e-mail, password and (when enrolled) a TOTP or recovery code',
    query: loginQuerySchema, queryExample: { cookie: '1' }, body: loginSchema, bodyExample: { email: 'ann@example.com', password: 'correct horse battery staple' },
    success: { status: 200, description: 'Token pair (and with ?cookie=1 the session cookie and CSRF token)', schema: out.tokenPairSchema },
    failures: [
      { status: 401, description: '`invalid_credentials` (also for an unknown e-mail) or `mfa_required`' },
      { status: 423, description: '`account_locked`, with Retry-After' },
    ],
  },
  { method: 'post', path: '/auth/refresh', tag: 'auth', access: 'public', summary: 'Spend a refresh token for a new pair', body: refreshSchema, bodyExample: { refreshToken: 'c2VjcmV0LXJlZnJlc2gtdG9rZW4tZXhhbXBsZQ' }, success: { status: 200, description: 'New token pair', schema: out.tokenPairSchema }, failures: [{ status: 401, description: '`invalid_token`; reuse of a spent token revokes the whole family' }] },
  { method: 'post', path: '/auth/logout', tag: 'auth', access: 'user', summary: 'End this session (or, with ?all=1, every session)', query: logoutQuerySchema, queryExample: { all: '1' }, success: { status: 204, description: 'Ended; refresh tokens revoked' } },
  {
    method: 'post', path: '/auth/password', tag: 'auth', access: 'user', summary: 'Change the password; every other session ends', body: passwordSchema,
    bodyExample: { currentPassword: 'the one-time password', newPassword: 'a long new passphrase' },
    success: { status: 204, description: 'Changed' },
    failures: [{ status: 400, description: '`weak_password`' }],
  },
  { method: 'post', path: '/auth/mfa/setup', tag: 'auth', access: 'user', summary: 'Start TOTP enrolment', success: { status: 200, description: 'Secret and otpauth URL', schema: out.mfaSetupSchema } },
  { method: 'post', path: '/auth/mfa/verify', tag: 'auth', access: 'user', summary: 'Confirm TOTP enrolment with a first code', body: codeSchema, bodyExample: { code: '123456' }, success: { status: 200, description: 'Ten single-use recovery codes', schema: out.recoveryCodesSchema }, failures: [{ status: 400, description: '`invalid_code`' }] },
  { method: 'get', path: '/.well-known/jwks.json', tag: 'auth', access: 'public', summary: 'Public keys that verify access tokens', success: { status: 200, description: 'JSON Web Key Set', schema: out.jwksSchema } },
  {
    method: 'get', path: OIDC_LOGIN_PATH, tag: 'auth', access: 'public', when: oidcConfigured, summary: 'Start an OIDC login (authorization code + PKCE + state + nonce)',
    success: { status: 302, description: 'Redirect to the identity provider' },
  },
  {
    method: 'get', path: OIDC_CALLBACK_PATH, tag: 'auth', access: 'public', when: oidcConfigured, summary: 'OIDC redirect target',
    query: oidcCallbackQuery,
    success: { status: 302, description: 'Session cookie set; redirect to /' },
    failures: [{ status: 401, description: '`oidc_failed` on any mismatch' }],
  },

  // accounts
  { method: 'get', path: '/api/me', tag: 'accounts', access: 'user', summary: 'The caller', success: { status: 200, description: 'Account', schema: out.meSchema } },
  { method: 'get', path: '/api/me/export', tag: 'accounts', access: 'user', summary: 'Every stored datum about the caller, decrypted (GDPR)', success: { status: 200, description: 'Export (as an attachment)', schema: out.userExportSchema } },
  { method: 'delete', path: '/api/me', tag: 'accounts', access: 'user', summary: "Erase the caller's data (GDPR); the audit trail keeps a pseudonymous record", success: { status: 202, description: 'Erased', schema: out.erasureSchema } },
  { method: 'get', path: '/api/users', tag: 'accounts', access: 'admin', summary: "The tenant's accounts", success: { status: 200, description: 'Accounts', schema: out.userListSchema } },
  {
    method: 'patch', path: '/api/users/:id', tag: 'accounts', access: 'admin', summary: 'Change an account\'s role or disable it; either ends its sessions',
    body: updateUserSchema, bodyExample: { role: 'operator', disabled: false },
    success: { status: 200, description: 'Changed', schema: out.userSchema },
    failures: [{ status: 409, description: '`cannot_modify_self`: an admin\'s own role and account' }],
  },
  { method: 'delete', path: '/api/users/:id/sessions', tag: 'accounts', access: 'admin', summary: 'End every session of an account (and its sockets)', success: { status: 204, description: 'Ended' } },
  { method: 'post', path: '/api/users', tag: 'accounts', access: 'admin', summary: "Create an account in the admin's tenant", body: newUserSchema, bodyExample: { email: 'new.colleague@example.com', role: 'operator' }, success: { status: 201, description: 'Created, with its one-time password', schema: out.createdUserSchema }, failures: [{ status: 409, description: '`email_taken`' }] },

  // bots
  { method: 'get', path: '/api/bots', tag: 'bots', access: 'user', summary: "The tenant's bots", success: { status: 200, description: 'Bots', schema: out.botListSchema } },
  { method: 'post', path: '/api/bots', tag: 'bots', access: 'staff', summary: 'Create a bot', body: createBotSchema,
    bodyExample: {
      name: 'Helpdesk',
      public: true,
      greeting: 'Hello! Ask me about opening hours.',
      rules: [{ match: 'opening hours', reply: 'Monday to Friday, 9 to 5.' }, { match: '/^(hi|hello)\\b/i', reply: 'Hi there!' }],
      llm: { systemPrompt: 'Answer briefly.', temperature: 0.2 },
    }, success: { status: 201, description: 'Created', schema: out.botSchema } },
  { method: 'get', path: '/api/bots/:id', tag: 'bots', access: 'staff', summary: 'A bot', success: { status: 200, description: 'Bot', schema: out.botSchema } },
  { method: 'patch', path: '/api/bots/:id', tag: 'bots', access: 'staff', summary: 'Change a bot', body: updateBotSchema, bodyExample: { name: 'Helpdesk (new)', greeting: null, public: false }, success: { status: 200, description: 'Changed', schema: out.botSchema } },
  { method: 'delete', path: '/api/bots/:id', tag: 'bots', access: 'staff', summary: 'Delete a bot', success: { status: 204, description: 'Deleted' } },
  { method: 'post', path: '/api/bots/:id/try', tag: 'bots', access: 'staff', summary: "What the bot's rules answer to a text (nothing is stored)", body: tryBotSchema, bodyExample: { text: 'hello there' }, success: { status: 200, description: 'The matching rule', schema: out.tryBotSchema } },
  { method: 'get', path: '/api/bots/:id/email/quarantine', tag: 'bots', access: 'staff', summary: "Inbound mails of the bot's e-mail channel that were given up on (quarantined)", success: { status: 200, description: 'Quarantined mails', schema: out.emailQuarantineSchema } },
  { method: 'post', path: '/api/bots/:id/conversations', tag: 'bots', access: 'user', summary: 'Start a conversation (the greeting is its first message)', success: { status: 201, description: 'Created', schema: out.createdIdSchema } },
  {
    method: 'post', path: '/api/bots/:id/guest-token', tag: 'bots', access: 'public', summary: "A public bot's visitor: a conversation and a token for it alone",
    success: { status: 200, description: 'Guest token', schema: out.guestTokenSchema },
  },

  // conversations
  {
    method: 'get', path: '/api/conversations', tag: 'conversations', access: 'staff', summary: "The tenant's conversations, newest activity first",
    query: conversationListSchema, queryExample: { status: 'waiting', limit: '20' },
    success: { status: 200, description: 'Conversations and the waiting list\'s length', schema: out.conversationPageSchema },
  },
  { method: 'get', path: '/api/conversations/:id', tag: 'conversations', access: 'participant', summary: 'A conversation and who answers it', success: { status: 200, description: 'Conversation', schema: out.conversationSchema } },
  {
    method: 'post', path: '/api/conversations/:id/handoff', tag: 'conversations', access: 'staff', summary: 'Take a web conversation over: the bot stops answering, the operator writes',
    success: { status: 200, description: 'Taken over', schema: out.conversationSchema },
    failures: [{ status: 409, description: '`handoff_not_supported`: an e-mail conversation' }],
  },
  {
    method: 'delete', path: '/api/conversations/:id/handoff', tag: 'conversations', access: 'staff', summary: 'Hand a conversation back to the bot',
    success: { status: 200, description: 'Handed back', schema: out.conversationSchema },
    failures: [{ status: 409, description: '`handoff_not_supported`: an e-mail conversation' }],
  },
  {
    method: 'post', path: '/api/conversations/:id/handoff-request', tag: 'conversations', access: 'participant', summary: 'The visitor asks for a person: the conversation waits for an operator',
    success: { status: 200, description: 'Waiting (unchanged when already waiting or taken over)', schema: out.conversationSchema },
    failures: [{ status: 409, description: '`handoff_not_supported`: an e-mail conversation' }],
  },
  { method: 'get', path: '/api/conversations/:id/messages', tag: 'conversations', access: 'participant', summary: 'Messages, oldest first', query: historySchema, queryExample: { limit: '50' }, success: { status: 200, description: 'Messages', schema: out.messageListSchema } },
  {
    method: 'post', path: '/api/conversations/:id/messages', tag: 'conversations', access: 'participant', summary: 'Send a message; the reply arrives over Socket.IO and in the list', body: messageBodySchema,
    bodyExample: { text: 'When are you open?', clientMessageId: 'web-1717171717-1' },
    description: '`attachments`: up to 10 ids of the caller\'s own uploaded files; a message needs text or an attachment.',
    success: { status: 202, description: 'Accepted', schema: out.acceptedMessageSchema },
    failures: [{ status: 409, description: '`handoff_required`: staff may write only in a conversation they took over' }, { status: 413, description: '`message_too_large`' }],
  },

  // files
  {
    method: 'post', path: '/api/files', tag: 'files', access: 'user', summary: 'Upload a file (multipart/form-data, field `file`)',
    description: 'Streamed to an encrypted staging file while its size is counted and its type sniffed from the bytes; the `files` worker then encrypts it under its own data key into storage. Guests cannot upload.',
    success: { status: 202, description: 'Accepted; `status` becomes `stored` or `failed`', schema: out.acceptedFileSchema },
    failures: [
      { status: 413, description: '`payload_too_large`: over BOTSERVER_MAX_UPLOAD_SIZE (the rest of the body is not read)' },
      { status: 415, description: '`unsupported_file_type`: the sniffed type is outside BOTSERVER_UPLOAD_TYPES; `unsupported_media_type`: not multipart' },
    ],
  },
  { method: 'get', path: '/api/files/:id', tag: 'files', access: 'user', summary: 'A file\'s metadata and status', description: 'Its owner, a participant of a conversation it is attached to, or staff of the tenant for attached files.', success: { status: 200, description: 'File', schema: out.fileSchema } },
  {
    method: 'get', path: '/api/files/:id/content', tag: 'files', access: 'user', summary: 'The decrypted content (attachment; HTTP Range supported)',
    description: 'Decrypts only the records a range needs. Every record of an answer up to 32 MiB is authenticated before the first byte is sent.',
    success: { status: 200, description: 'The file (206 for a range)', contentType: 'application/octet-stream' },
    failures: [
      { status: 409, description: '`file_not_ready` (still pending) or `file_failed`' },
      { status: 416, description: '`range_not_satisfiable`' },
    ],
  },
  { method: 'delete', path: '/api/files/:id', tag: 'files', access: 'user', summary: 'Delete a file: its row, its data key and every stored version', success: { status: 204, description: 'Deleted' } },

  // knowledge (feature vectordb)
  {
    method: 'post', path: '/api/bots/:id/knowledge', tag: 'knowledge', access: 'staff', summary: 'Add a document to a bot\'s knowledge: text, or a stored file (txt, md, html, pdf, docx)',
    body: newDocumentSchema, bodyExample: { title: 'Opening hours', text: '# Opening hours\n\nWe are open Monday to Friday, 9 to 5.' },
    success: { status: 202, description: 'Accepted; the embed worker indexes it (`status` becomes `indexed` or `failed`)', schema: out.acceptedDocumentSchema },
    failures: [{ status: 409, description: '`feature_disabled` without vectordb' }, { status: 422, description: '`unsupported_document`: the file\'s type cannot be indexed' }],
  },
  { method: 'get', path: '/api/bots/:id/knowledge', tag: 'knowledge', access: 'staff', summary: 'The bot\'s documents with their status and, when failed, the reason', success: { status: 200, description: 'Documents', schema: out.knowledgeListSchema }, failures: [{ status: 409, description: '`feature_disabled`' }] },
  { method: 'delete', path: '/api/bots/:id/knowledge/:docId', tag: 'knowledge', access: 'staff', summary: 'Delete a document and its points', success: { status: 204, description: 'Deleted' }, failures: [{ status: 409, description: '`feature_disabled`' }, { status: 503, description: '`unavailable`: Qdrant did not answer; nothing was deleted' }] },
  {
    method: 'get', path: '/api/bots/:id/knowledge/search', tag: 'knowledge', access: 'participant', summary: 'Hybrid search (dense + BM25, fused by reciprocal rank) in the bot\'s documents',
    description: 'Staff of the tenant, or a user or guest taking part in a conversation with the bot. Always filtered by tenant and bot.',
    query: searchQuerySchema, queryExample: { q: 'opening hours', limit: '5' },
    success: { status: 200, description: 'Ranked passages', schema: out.knowledgeSearchSchema }, failures: [{ status: 409, description: '`feature_disabled`' }],
  },

  // audit
  { method: 'get', path: '/api/audit', tag: 'audit', access: 'admin', summary: "The tenant's audit events, newest first", query: auditQuerySchema, queryExample: { type: 'auth.', limit: '20' }, success: { status: 200, description: 'Events', schema: out.auditListSchema } },
  {
    method: 'post', path: '/api/audit/verify', tag: 'audit', access: 'admin', summary: 'Queue a verification of the audit hash chain (the audit worker walks it)',
    description: '`{}` walks on from the last verified checkpoint (signed with the chain key); `{full:true}` from the first row. While a run is queued or running, a new request joins it (same `jobId`).',
    body: auditVerifyRequestSchema, bodyExample: { full: false },
    success: { status: 202, description: 'Queued', schema: out.auditVerifyQueuedSchema },
    failures: [{ status: 503, description: '`unavailable`: the job could not be queued' }],
  },
  { method: 'get', path: '/api/audit/verify', tag: 'audit', access: 'admin', summary: 'The latest verification run and its result', success: { status: 200, description: 'Run (`{state:"none"}` before the first)', schema: out.auditVerifySchema } },
];

/** The routes this configuration mounts. */
export function routesFor(config: Config): RouteSpec[] {
  return ROUTES.filter((route) => route.when === undefined || route.when(config));
}
