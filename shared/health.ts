import type { Redis } from 'ioredis';
import type { Knex } from 'knex';

const CHECK_TIMEOUT_MS = 1500;

async function answers(check: () => Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), CHECK_TIMEOUT_MS);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export interface Readiness {
  ready: boolean;
  /** Each dependency `up` or `down`; nothing about where it is or what failed. */
  body: { status: 'ready' | 'unavailable'; redis: DependencyState; postgres: DependencyState };
}

export type DependencyState = 'up' | 'down';

const stateOf = (up: boolean): DependencyState => (up ? 'up' : 'down');

/**
 * What `/readyz` reports, for the API and for workers alike: Redis and PostgreSQL answer now (within 1.5 s each).
 * `probeRedis` should be a connection without an offline queue, so an outage fails fast instead of queueing the PING.
 */
export async function checkReadiness(probeRedis: Redis, db: Knex): Promise<Readiness> {
  const [redis, postgres] = await Promise.all([answers(() => probeRedis.ping()), answers(() => db.raw('select 1'))]);
  const ready = redis && postgres;
  return { ready, body: { status: ready ? 'ready' : 'unavailable', redis: stateOf(redis), postgres: stateOf(postgres) } };
}
