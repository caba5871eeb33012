import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { log } from '../log/index.js';
import { AUDIT_BATCH_JOB, AUDIT_BATCH_MAX, type AuditEventPayload, type QueueFactory } from '../queue/index.js';
import { appendAuditEvent, appendAuditEvents } from './chain.js';
import type { ChainKeySource } from './keys.js';
import type { AuditEventInput } from './types.js';

const ENQUEUE_TIMEOUT_MS = 2000;
/**
 * Group commit's deliveries under way at once: more than one, so a delivery stuck until its timeout (an outage)
 * does not hold every later event behind it.
 */
const MAX_DELIVERIES = 4;

export interface AuditRecorderOptions {
  enabled: boolean;
  queues: QueueFactory;
  /** Lazily opened connection as the audit role, used only when the queue cannot take the event. */
  fallbackDb: () => Knex;
  keys: ChainKeySource;
  /** Events recorded while one is being enqueued go together as one `batch` job (see AuditRecorder); default: one job each. */
  groupCommit?: boolean;
}

interface Pending {
  event: AuditEventPayload;
  recorded: () => void;
  failed: (error: unknown) => void;
}

/**
 * The one audit function of the server. Events go through the encrypted `audit` queue to the audit worker; when
 * the queue is unreachable they are appended to the chain directly, so none is lost. With `groupCommit`, an event
 * recorded while few are being enqueued goes at once as a job of its own (job id = event id); events recorded while
 * MAX_DELIVERIES are on their way wait for one of them and then go together, as one `batch` job. A busy process thus adds one job per
 * batch instead of one per event, and a quiet one adds no delay. `record` resolves once its event is in the queue
 * (or the chain).
 */
export class AuditRecorder {
  private readonly options: AuditRecorderOptions;
  private pending: Pending[] = [];
  private deliveries = 0;

  constructor(options: AuditRecorderOptions) {
    this.options = options;
  }

  async record(input: AuditEventInput): Promise<void> {
    if (!this.options.enabled) return;
    const event = toPayload(input);
    if (this.options.groupCommit !== true) return this.deliver([event]);
    await new Promise<void>((recorded, failed) => {
      this.pending.push({ event, recorded, failed });
      if (this.deliveries < MAX_DELIVERIES) void this.deliverPending();
    });
  }

  /** Delivers what waits, batch after batch, until nothing does; a few such loops run at once (MAX_DELIVERIES). */
  private async deliverPending(): Promise<void> {
    this.deliveries += 1;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, AUDIT_BATCH_MAX);
        try {
          await this.deliver(batch.map((item) => item.event));
          for (const item of batch) item.recorded();
        } catch (error) {
          for (const item of batch) item.failed(error);
        }
      }
    } finally {
      this.deliveries -= 1;
    }
  }

  private async deliver(events: AuditEventPayload[]): Promise<void> {
    const [first] = events;
    if (first === undefined) return;
    try {
      const job =
        events.length === 1
          ? this.options.queues.enqueue('audit', first.type, first, { jobId: first.eventId })
          : this.options.queues.enqueue('audit', AUDIT_BATCH_JOB, { events }, { jobId: `batch-${first.eventId}` });
      await withTimeout(job, ENQUEUE_TIMEOUT_MS);
    } catch (error) {
      log.warn('audit queue unavailable, writing the events directly', { events: events.length, types: [...new Set(events.map((event) => event.type))], error: (error as Error).message });
      await appendAuditEvents(this.options.fallbackDb(), this.options.keys, events);
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
