import type { Redis } from 'ioredis';
import type { QuarantineReason } from '../../shared/email/stats.js';

/** How long an unfinished attempt is remembered. */
const ATTEMPTS_TTL_S = 7 * 24 * 3600;

/**
 * How often each mail of a mailbox was started without being finished, kept in Redis (one hash per mailbox) so that
 * a crash while handling a mail counts as well as an error does. A count is taken before the mail is handled and
 * dropped once it is stored; what is left says the mail was tried before. `failed:` fields remember that the last
 * unfinished attempt ended in an error (else it ended in a crash).
 */
export class AttemptCounter {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    botId: string,
    private readonly uidValidity: number,
  ) {
    this.key = `${prefix}:email:attempts:${botId}`;
  }

  private field(uid: number): string {
    return `${this.uidValidity}:${uid}`;
  }

  /** Whether any of the mails was started before and not finished (one round trip). */
  async anyStarted(uids: readonly number[]): Promise<boolean> {
    if (uids.length === 0) return false;
    const counts = await this.redis.hmget(this.key, ...uids.map((uid) => this.field(uid)));
    return counts.some((count) => Number(count ?? 0) > 0);
  }

  /** Counts one more attempt of each mail (one round trip); resolves with the counts, this attempt included. */
  async begin(uids: readonly number[]): Promise<number[]> {
    const pipeline = this.redis.multi();
    for (const uid of uids) pipeline.hincrby(this.key, this.field(uid), 1);
    pipeline.expire(this.key, ATTEMPTS_TTL_S);
    const results = (await pipeline.exec()) ?? [];
    return uids.map((_, index) => Number(results[index]?.[1] ?? 0));
  }

  /** Takes back an attempt that did not happen through the mail's fault (a dependency was down). */
  async undo(uids: readonly number[]): Promise<void> {
    if (uids.length === 0) return;
    const pipeline = this.redis.multi();
    for (const uid of uids) pipeline.hincrby(this.key, this.field(uid), -1);
    await pipeline.exec();
  }

  /** Remembers that the mail's attempt ended in an error (a thrown failure, not a crash). */
  async failed(uid: number): Promise<void> {
    await this.redis.hset(this.key, `failed:${this.field(uid)}`, '1');
  }

  /** Why a mail that used up its attempts is given up on. */
  async reason(uid: number): Promise<QuarantineReason> {
    return (await this.redis.hexists(this.key, `failed:${this.field(uid)}`)) === 1 ? 'failed' : 'crashed';
  }

  /** Forgets the mails (stored, skipped or quarantined). */
  async finish(uids: readonly number[]): Promise<void> {
    if (uids.length === 0) return;
    await this.redis.hdel(this.key, ...uids.flatMap((uid) => [this.field(uid), `failed:${this.field(uid)}`]));
  }
}
