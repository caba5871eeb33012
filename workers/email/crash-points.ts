import type { Kernel } from '../../shared/kernel.js';

/** Where the crash tests kill an e-mail worker (see test/integration/email-crash.test.ts). */
export type CrashPoint = 'inbound-after-fetch' | 'inbound-after-store' | 'outbound-after-accept' | 'outbound-after-append';

/**
 * Test-only crash points: with NODE_ENV=test and BOTSERVER_TEST_EMAIL_CRASH naming the point, the process kills
 * itself with SIGKILL there, to prove the exactly-once rules. With BOTSERVER_TEST_EMAIL_CRASH_ARMED=1 it does so
 * only while the Redis key `<prefix>:test:email-crash` names the point (the key is taken, so once per arming): a
 * test can let a fresh worker recover first and arm the crash afterwards. Does nothing outside tests.
 */
export async function crashPoint(kernel: Kernel, name: CrashPoint): Promise<void> {
  if (process.env.NODE_ENV !== 'test' || process.env.BOTSERVER_TEST_EMAIL_CRASH !== name) return;
  if (process.env.BOTSERVER_TEST_EMAIL_CRASH_ARMED === '1' && (await kernel.redis.getdel(`${kernel.queues.prefix}:test:email-crash`)) !== name) return;
  process.kill(process.pid, 'SIGKILL');
}
