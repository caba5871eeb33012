import type { Knex } from 'knex';

/** How long a bot's widget origins are remembered: a change in the console applies within this bound. */
const TTL_MS = 10_000;
const MAX_CACHED_BOTS = 10_000;

interface Cached<T> {
  value: T;
  until: number;
}

/**
 * The origins on which public bots' widgets may run (each bot's `allowedOrigins`), read through the
 * SECURITY DEFINER functions of migration 012 (no tenant is known before a visitor has a token) and cached briefly.
 */
export class WidgetOrigins {
  private readonly db: Knex;
  private readonly byBot = new Map<string, Cached<readonly string[]>>();
  private all: Cached<ReadonlySet<string>> | undefined;

  constructor(db: Knex) {
    this.db = db;
  }

  /** A public, live bot's allowed origins; empty for any other bot. */
  async ofBot(botId: string): Promise<readonly string[]> {
    const cached = this.byBot.get(botId);
    if (cached !== undefined && cached.until > Date.now()) return cached.value;
    const result = await this.db.raw<{ rows: Array<{ origins: string[] | null }> }>('select public_bot_origins(?) as origins', [botId]);
    const value = result.rows[0]?.origins ?? [];
    if (this.byBot.size >= MAX_CACHED_BOTS) this.byBot.clear();
    this.byBot.set(botId, { value, until: Date.now() + TTL_MS });
    return value;
  }

  async allowsForBot(botId: string, origin: string): Promise<boolean> {
    return (await this.ofBot(botId)).includes(origin);
  }

  /** Whether some public bot lists the origin. */
  async allowsForAnyBot(origin: string): Promise<boolean> {
    if (this.all === undefined || this.all.until <= Date.now()) {
      const result = await this.db.raw<{ rows: Array<{ origin: string }> }>('select public_widget_origins() as origin');
      this.all = { value: new Set(result.rows.map((row) => row.origin)), until: Date.now() + TTL_MS };
    }
    return this.all.value.has(origin);
  }
}
