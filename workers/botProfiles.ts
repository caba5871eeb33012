import type { BotProfile } from '../adapters/llm/index.js';

/** What the turn statement is told when the worker holds no profile of the bot: no version equals it. */
export const NO_VERSION = '-1';

/**
 * The bots' profiles (name, rules, LLM settings) a reply worker has seen, each with the version it was read at
 * (`bots.updated_at` in microseconds, which every change of a bot moves). The turn statement sends a profile only
 * when the bot's version differs from the one held here, so a rule bot's rules cross the wire once per change.
 */
export class BotProfileCache {
  private readonly entries = new Map<string, { version: string; profile: BotProfile }>();
  private readonly limit: number;

  constructor(limit = 1000) {
    this.limit = limit;
  }

  /** The version held for the bot, or NO_VERSION. */
  versionOf(botId: string): string {
    return this.entries.get(botId)?.version ?? NO_VERSION;
  }

  /**
   * The bot's profile at `version`: `loaded` when the statement sent one (it is kept), else the one held (undefined
   * when none is held at that version, which the statement rules out).
   */
  profileAt(botId: string, version: string, loaded: BotProfile | null): BotProfile | undefined {
    if (loaded !== null) {
      if (this.entries.size >= this.limit && !this.entries.has(botId)) this.entries.clear();
      this.entries.set(botId, { version, profile: loaded });
      return loaded;
    }
    const held = this.entries.get(botId);
    return held?.version === version ? held.profile : undefined;
  }
}
