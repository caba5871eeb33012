import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { log } from '../log/index.js';
import type { AuditEventPayload, QueueFactory } from '../queue/index.js';
import { appendAuditEvent } from './chain.js';
import type { ChainKeySource } from './keys.js';
import type { AuditEventInput } from './types.js';

const ENQUEUE_TIMEOUT_MS = 2000;

export interface AuditRecorderOptions {
  enabled: boolean;
  queues: QueueFactory;
  /** Lazily opened connection as the audit role, used only when the queue cannot take the event. */
  fallbackDb: () => Knex;
  keys: ChainKeySource;
}

/**
 * The one audit function of the server. Events go through the encrypted `audit` queue to the audit worker; when
 * the queue is unreachable they are appended to the chain directly, so none is lost.
 */
export class AuditRecorder {
  private readonly options: AuditRecorderOptions;

  constructor(options: AuditRecorderOptions) {
    this.options = options;
  }

  async record(input: AuditEventInput): Promise<void> {
    if (!this.options.enabled) return;
    const event = toPayload(input);
    try {
      await withTimeout(this.options.queues.enqueue('audit', event.type, event, { jobId: event.eventId }), ENQUEUE_TIMEOUT_MS);
    } catch (error) {
      log.warn('audit queue unavailable, writing the event directly', { type: event.type, error: (error as Error).message });
      await appendAuditEvent(this.options.fallbackDb(), this.options.keys, event);
    }
  }

  /**
   * Appends the event straight to the chain (as the audit role, bypassing the queue) and returns once it is written:
   * for an event that must be in the chain before the caller goes on, such as an erasure (see appendAuditEvents).
   */
  async recordNow(input: AuditEventInput): Promise<void> {
    if (!this.options.enabled) return;
    await appendAuditEvent(this.options.fallbackDb(), this.options.keys, toPayload(input));
  }
}

function toPayload(input: AuditEventInput): AuditEventPayload {
  return {
    eventId: randomUUID(),
    time: new Date().toISOString(),
    tenantId: input.tenantId ?? null,
    actor: input.actor ?? null,
    type: input.type,
    target: input.target ?? null,
    outcome: input.outcome,
    ip: input.ip ?? null,
    requestId: input.requestId ?? null,
    details: input.details ?? {},
  };
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
