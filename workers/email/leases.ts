import { randomUUID } from 'node:crypto';
import type { Kernel } from '../../shared/kernel.js';
import { log } from '../../shared/log/index.js';
import type { EmailWorkerOptions } from './options.js';
import { MailboxWatcher } from './watcher.js';

const RENEW_LUA = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE_LUA = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/**
 * Spreads mailboxes over the e-mail worker processes: a mailbox is watched by the process holding its lease in
 * Redis (SET NX PX, renewed; a crashed holder's lease expires and another process takes it over).
 */
export class MailboxLeases {
  private readonly owner = randomUUID();
  private readonly watchers = new Map<string, MailboxWatcher>();
  private readonly timers: NodeJS.Timeout[] = [];
  private scanning: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly kernel: Kernel,
    private readonly options: EmailWorkerOptions,
  ) {}

  private leaseKey(botId: string): string {
    return `${this.kernel.queues.prefix}:email:lease:${botId}`;
  }

  start(): void {
    const scan = (): void => {
      this.scanning = this.scanning.then(() => this.scan()).catch((error: unknown) => {
        log.warn('mailbox scan failed', { error: error instanceof Error ? error.message.slice(0, 200) : 'unknown' });
      });
    };
    scan();
    this.timers.push(setInterval(scan, this.options.scanMs));
    this.timers.push(setInterval(() => void this.renew().catch(() => undefined), Math.max(200, Math.floor(this.options.leaseMs / 3))));
  }

  private async scan(): Promise<void> {
    if (this.stopped) return;
    const result = await this.kernel.db.raw<{ rows: Array<{ bot_id: string; tenant_id: string }> }>('select bot_id, tenant_id from email_active_mailboxes()');
    const { onlyBots } = this.options;
    const rows = onlyBots === undefined ? result.rows : result.rows.filter((row) => onlyBots.includes(row.bot_id));
    const active = new Set(rows.map((row) => row.bot_id));
    for (const [botId, watcher] of this.watchers) {
      if (!active.has(botId)) await this.drop(botId, watcher);
    }
    for (const { bot_id: botId, tenant_id: tenantId } of rows) {
      if (this.stopped || this.watchers.has(botId)) continue;
      const taken = await this.kernel.redis.set(this.leaseKey(botId), this.owner, 'PX', this.options.leaseMs, 'NX');
      if (taken !== 'OK') continue;
      const watcher = new MailboxWatcher(this.kernel, botId, tenantId, this.options);
      this.watchers.set(botId, watcher);
      void watcher.done.finally(() => {
        if (this.watchers.get(botId) === watcher) void this.drop(botId, watcher);
      });
    }
  }

  private async renew(): Promise<void> {
    for (const [botId, watcher] of this.watchers) {
      const kept = await this.kernel.redis.eval(RENEW_LUA, 1, this.leaseKey(botId), this.owner, String(this.options.leaseMs));
      if (kept !== 1) {
        log.warn('mailbox lease lost', { botId });
        watcher.stop();
        this.watchers.delete(botId);
      }
    }
  }

  private async drop(botId: string, watcher: MailboxWatcher): Promise<void> {
    this.watchers.delete(botId);
    watcher.stop();
    await watcher.done.catch(() => undefined);
    await this.kernel.redis.eval(RELEASE_LUA, 1, this.leaseKey(botId), this.owner).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    await this.scanning;
    await Promise.allSettled([...this.watchers].map(([botId, watcher]) => this.drop(botId, watcher)));
  }
}
