import type { Request } from 'express';
import { createStorage, type ObjectStorage } from '../adapters/storage/index.js';
import { FileStaging } from '../shared/files/index.js';
import { knowledgeServices, type KnowledgeServices } from './knowledge/service.js';
import { hashPassword } from '../shared/accounts/index.js';
import type { AuditEventInput } from '../shared/audit/index.js';
import { ChatEmitter } from '../shared/chat/index.js';
import { randomToken } from '../shared/crypto/index.js';
import { readEmailStats } from '../shared/email/stats.js';
import type { Kernel } from '../shared/kernel.js';
import { TOKEN_KID_REDIS_KEY } from '../shared/keys.js';
import { log } from '../shared/log/index.js';
import { LoginGuard } from './auth/loginGuard.js';
import { ApiMetrics } from './http/metrics.js';
import { SessionStore } from './auth/sessions.js';
import { TokenService } from './auth/tokens.js';
import { WidgetOrigins } from './http/widgetOrigins.js';

/** Everything routes need, built once per API process. */
export interface ApiContext {
  kernel: Kernel;
  tokens: TokenService;
  sessions: SessionStore;
  loginGuard: LoginGuard;
  /** Conversation events to every API process's sockets, through Redis. */
  chat: ChatEmitter;
  metrics: ApiMetrics;
  /** Where encrypted file objects live (S3 or the local folder). */
  storage: ObjectStorage;
  /** Uploads waiting for the files worker. */
  staging: FileStaging;
  /** The origins public bots' widgets may run on. */
  widgetOrigins: WidgetOrigins;
  /** Qdrant and the query embedder, with the vectordb feature. */
  knowledge: KnowledgeServices | undefined;
  /** An Argon2id hash of a random password: unknown e-mails are verified against it so they cost the same time. */
  dummyPasswordHash: string;
  /** Records an audit event with the request's actor, tenant, IP and id; never fails the request. */
  audit(req: Request, event: AuditEventInput): Promise<void>;
}

export async function createApiContext(kernel: Kernel): Promise<ApiContext> {
  const { config, keys, redis } = kernel;
  const storage = createStorage(config);
  // The files worker creates the bucket too; here a failure only means downloads answer 503 until it exists.
  await storage.ensureReady().catch((error: unknown) => log.error('file storage is not ready', { backend: storage.kind, error: error instanceof Error ? error.message : String(error) }));
  kernel.onClose(() => storage.close());
  // Which token key this process hashes refresh tokens and cookie secrets with, for `botserver keys rotate --check`.
  void redis.set(TOKEN_KID_REDIS_KEY, keys.tokenKid).catch((error: unknown) => log.warn('token key id not recorded', { error: error instanceof Error ? error.message : String(error) }));
  const chat = new ChatEmitter(redis);
  const metrics = new ApiMetrics(kernel.queues);
  metrics.emailStats = () => readEmailStats(redis, kernel.queues.prefix);
  return {
    kernel,
    tokens: await TokenService.fromPem(keys.jwtPrivateKeyPem),
    sessions: new SessionStore(redis, config.sessionTimeoutSeconds, keys.tokenHmacKey, (sids) => chat.endSessions(sids)),
    loginGuard: new LoginGuard(redis, config.maxLoginAttempts, config.lockoutDurationSeconds),
    chat,
    metrics,
    storage,
    staging: new FileStaging(config.dataDir),
    widgetOrigins: new WidgetOrigins(kernel.db),
    knowledge: knowledgeServices(config),
    dummyPasswordHash: await hashPassword(randomToken(24)),
    async audit(req, event) {
      try {
        await kernel.audit.record({
          actor: req.auth?.userId ?? null,
          tenantId: req.auth?.tenantId ?? null,
          ip: req.ip ?? null,
          requestId: req.requestId,
          ...event,
        });
      } catch (error) {
        log.error('audit event could not be recorded', { type: event.type, error: (error as Error).message });
      }
    },
  };
}
