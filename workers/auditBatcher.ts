import type { Knex } from 'knex';
import { appendAuditEvents, type ChainKeySource } from '../shared/audit/index.js';
import type { AuditEventPayload } from '../shared/queue/index.js';

interface Pending {
  event: AuditEventPayload;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Gathers the events of the jobs a worker holds at once and appends them to the chain in one locked transaction.
 * Each job's promise settles only after its batch committed, so a crash loses nothing: unfinished jobs are
 * retried, and appends are idempotent by event id.
 */
export class AuditBatcher {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Knex,
    private readonly keys: ChainKeySource,
    private readonly maxBatch = 200,
    private readonly maxWaitMs = 10,
  ) {}

  append(event: AuditEventPayload): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ event, resolve, reject });
      if (this.pending.length >= this.maxBatch) this.flushSoon(0);
      else this.flushSoon(this.maxWaitMs);
    });
  }

  private flushSoon(delayMs: number): void {
    if (this.timer !== undefined && delayMs > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const batch = this.pending;
      this.pending = [];
      // Batches are written one after another, so the chain keeps the order in which jobs arrived here.
      this.flushing = this.flushing.then(() => this.write(batch));
    }, delayMs);
  }

  private async write(batch: Pending[]): Promise<void> {
    if (batch.length === 0) return;
    try {
      await appendAuditEvents(this.db, this.keys, batch.map((item) => item.event));
      for (const item of batch) item.resolve();
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
  }
}
