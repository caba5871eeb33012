// Shapes of the botserver API as the page uses them (README "HTTP API" and the console contract).

export type Role = 'admin' | 'operator' | 'user';

export interface Me {
  id: string;
  email: string;
  tenantId?: string;
  roles: string[];
  mfa: boolean;
  /** True for admins of the operator tenant, who may open Bull Board at /admin/queues. */
  queues?: boolean;
}

export interface Rule {
  match: string;
  reply: string;
  handoff?: boolean;
}

export interface LlmSettings {
  model?: string;
  systemPrompt?: string;
  temperature?: number;
}

export interface Bot {
  id: string;
  name: string;
  public: boolean;
  greeting: string | null;
  /** The fields below are shown to admins and operators only. */
  rules?: Rule[];
  llm?: LlmSettings | null;
  email?: { configured: true } | null;
  allowedOrigins?: string[];
  createdAt?: string;
  updatedAt?: string;
}

export interface EmailEndpoint {
  host: string;
  port: number;
  secure: boolean;
  user: string;
  pass: string;
}

export interface EmailChannelInput {
  imap: EmailEndpoint;
  smtp: EmailEndpoint;
  address: string;
}

export interface KnowledgeDocument {
  id: string;
  botId: string;
  title: string;
  status: 'pending' | 'indexed' | 'failed';
  reason: string | null;
  chunks: number | null;
  createdAt: string;
}

export type ConversationStatus = 'bot' | 'waiting' | 'operator';

export interface ConversationView {
  id: string;
  botId: string;
  botName: string;
  channel: 'web' | 'email';
  status: ConversationStatus;
  visitor: 'guest' | 'user' | 'email';
  operatorId: string | null;
  lastActivityAt: string;
  createdAt: string;
}

export interface ConversationList {
  conversations: ConversationView[];
  waiting: number;
}

export interface StatusEvent {
  conversationId: string;
  status: ConversationStatus;
  operatorId: string | null;
}

export interface UserView {
  id: string;
  email: string;
  role: Role;
  mfa: boolean;
  disabled: boolean;
  mustChangePassword: boolean;
  createdAt: string;
}

export interface InvitedUser {
  id: string;
  email: string;
  role: Role;
  tenant: string;
  password: string;
}

export interface AuditEvent {
  id: string;
  time: string;
  type: string;
  actor: string | null;
  target: string | null;
  outcome: string;
  ip: string | null;
  requestId: string | null;
  details: Record<string, unknown>;
}

export type VerifyRun =
  | { state: 'none' }
  | {
      jobId: string;
      state: 'queued' | 'running' | 'done' | 'failed';
      ok?: boolean;
      checked?: number;
      firstBrokenId?: string;
      startedAt?: string;
      finishedAt?: string;
    };

export interface TryResult {
  reply: string | null;
  rule: number | null;
  handoff: boolean;
}

export interface Attachment {
  id: string;
  name?: string;
  size?: number;
  type?: string;
}

export interface Source {
  documentId?: string;
  title: string;
  position?: string;
}

export type MessageRole = 'user' | 'bot' | 'operator';

export interface ChatMessage {
  conversationId?: string;
  messageId: string;
  role: MessageRole;
  text: string;
  createdAt?: string;
  attachments?: Attachment[];
  sources?: Source[];
}

export interface ChunkEvent {
  conversationId: string;
  messageId: string;
  delta: string;
}

/** The acknowledgement of a Socket.IO event. */
export interface Ack {
  ok: boolean;
  error?: string;
  messageId?: string;
  /** With `error: "unavailable"`: how long to wait before sending again. */
  retryAfterMs?: number;
}
