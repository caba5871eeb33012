import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { hashPassword } from '../../shared/accounts/index.js';
import { hmacHex } from '../../shared/crypto/index.js';
import { configureProcessLogging } from '../../shared/kernel.js';
import { apiTestConfig, createTestUser, postJson, startTestApi, type TestApi, type TestUser } from '../../test/helpers/api.js';
import { uniqueQueuePrefix } from '../../test/helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { percentile, round1, table } from './stats.js';

/**
 * Login benchmark: a throwaway database and an API server in this process, one account, then
 *  (a) the cost of one Argon2id hash (20 sequential `hashPassword` calls, median and p95), and
 *  (b) rounds of 50 concurrent logins with the right password, with login latency, logins per second and the
 *      event-loop lag meanwhile, and the latency of one unauthenticated and one authenticated request sent during
 *      the burst.
 * Argon2 runs on libuv's thread pool (UV_THREADPOOL_SIZE, 4 by default), so concurrent logins queue there and the
 * event loop itself should stay responsive; jose signs and verifies JWTs through WebCrypto, which uses the same
 * pool. The HTTP clients run in this process too, so the lag includes their work.
 */

const HASH_SAMPLES = 20;
const CONCURRENT_LOGINS = 50;
const ROUNDS = 2;
/** monitorEventLoopDelay samples once per resolution; each sample is the whole interval, so lag = sample - resolution. */
const LAG_RESOLUTION_MS = 10;

interface RoundResult {
  round: number;
  logins: number;
  ok: number;
  failures: string[];
  wallMs: number;
  loginsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /** One GET /healthz (no crypto) and one GET /api/me (bearer: JWT verified via WebCrypto, on the same thread pool), sent 100 ms into the round. */
  probeHealthzMs: number;
  probeMeMs: number;
}

const lagMs = (nanoseconds: number): number => round1(Math.max(0, nanoseconds / 1e6 - LAG_RESOLUTION_MS));

async function measureHashing(): Promise<{ medianMs: number; p95Ms: number; samples: number }> {
  const times: number[] = [];
  for (let index = 0; index < HASH_SAMPLES; index += 1) {
    const started = performance.now();
    await hashPassword(`bench-password-${index}`);
    times.push(performance.now() - started);
  }
  return { medianMs: round1(percentile(times, 50)), p95Ms: round1(percentile(times, 95)), samples: times.length };
}

const PROBE_DELAY_MS = 100;

async function timed(action: () => Promise<Response>): Promise<number> {
  const started = performance.now();
  const response = await action();
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`probe ${response.url} answered ${response.status}`);
  return round1(performance.now() - started);
}

async function probe(api: TestApi, bearer: string): Promise<{ healthz: number; me: number }> {
  await new Promise((resolve) => setTimeout(resolve, PROBE_DELAY_MS));
  const [healthz, me] = await Promise.all([
    timed(() => fetch(`${api.url}/healthz`)),
    timed(() => fetch(`${api.url}/api/me`, { headers: { authorization: `Bearer ${bearer}` } })),
  ]);
  return { healthz, me };
}

async function loginRound(api: TestApi, user: TestUser, bearer: string, round: number, refreshTokens: string[], accessTokens: string[]): Promise<RoundResult> {
  const histogram = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  histogram.enable();
  const started = performance.now();
  const probed = probe(api, bearer).catch((error: unknown) => {
    process.stderr.write(`probe failed: ${String(error)}\n`);
    return { healthz: Number.NaN, me: Number.NaN };
  });
  const attempts = await Promise.all(
    Array.from({ length: CONCURRENT_LOGINS }, async () => {
      const begun = performance.now();
      try {
        const reply = await postJson(`${api.url}/auth/login`, { email: user.email, password: user.password });
        const ms = performance.now() - begun;
        if (reply.status !== 200) return { ms, failure: `${reply.status} ${String(reply.body.error)}` };
        refreshTokens.push(String(reply.body.refreshToken));
        accessTokens.push(String(reply.body.accessToken));
        return { ms, failure: undefined };
      } catch (error: unknown) {
        return { ms: performance.now() - begun, failure: error instanceof Error ? error.message : String(error) };
      }
    }),
  );
  const wallMs = performance.now() - started;
  histogram.disable();
  const probes = await probed;
  const latencies = attempts.map((attempt) => attempt.ms);
  const failures = attempts.flatMap((attempt) => (attempt.failure === undefined ? [] : [attempt.failure]));
  return {
    round,
    logins: attempts.length,
    ok: attempts.length - failures.length,
    failures,
    wallMs: round1(wallMs),
    loginsPerSecond: round1((attempts.length - failures.length) / (wallMs / 1000)),
    latencyP50Ms: round1(percentile(latencies, 50)),
    latencyP99Ms: round1(percentile(latencies, 99)),
    lagP50Ms: lagMs(histogram.percentile(50)),
    lagP99Ms: lagMs(histogram.percentile(99)),
    lagMaxMs: lagMs(histogram.max),
    probeHealthzMs: probes.healthz,
    probeMeMs: probes.me,
  };
}

/** Ends the sessions and refresh tokens the rounds created and drops the audit jobs nobody will consume. */
async function cleanRedis(api: TestApi, refreshTokens: string[], accessTokens: string[]): Promise<void> {
  const [token] = accessTokens;
  if (token !== undefined) await postJson(`${api.url}/auth/logout?all=1`, {}, { authorization: `Bearer ${token}` });
  // Same key scheme as the session store: refresh tokens are kept under the HMAC of the token.
  const keys = refreshTokens.map((refresh) => `botserver:refresh:${hmacHex(api.kernel.keys.tokenHmacKey, `refresh\0${refresh}`)}`);
  for (let index = 0; index < keys.length; index += 500) await api.kernel.redis.del(...keys.slice(index, index + 500));
  await api.kernel.queues.queue('audit').obliterate({ force: true });
}

export async function run(args: string[]): Promise<number> {
  if (args.length > 0) {
    process.stderr.write('usage: npm run bench -- login   (no options)\n');
    return 2;
  }
  const threadPool = process.env.UV_THREADPOOL_SIZE ?? '4 (default)';
  let database: TestDatabase | undefined;
  let api: TestApi | undefined;
  const refreshTokens: string[] = [];
  const accessTokens: string[] = [];
  try {
    database = await createTestDatabase();
    const config = apiTestConfig(database.url, {
      LOG_LEVEL: 'warn',
      // Every request comes from 127.0.0.1: keep any per-IP or per-user limit out of the measurement.
      BOTSERVER_RATE_LIMIT_PER_IP: '1000000',
      BOTSERVER_RATE_LIMIT_PER_USER: '1000000',
    });
    configureProcessLogging(config, 'botserver-bench');
    api = await startTestApi(config, uniqueQueuePrefix());
    const user = await createTestUser(config, { role: 'user' });

    const hashing = await measureHashing();
    // One warm-up login (not measured): connections and code paths are ready, and its token feeds the probe.
    const warmUp = await postJson(`${api.url}/auth/login`, { email: user.email, password: user.password });
    if (warmUp.status !== 200) throw new Error(`warm-up login failed: ${warmUp.status} ${JSON.stringify(warmUp.body)}`);
    const bearer = String(warmUp.body.accessToken);
    refreshTokens.push(String(warmUp.body.refreshToken));
    accessTokens.push(bearer);
    const rounds: RoundResult[] = [];
    for (let round = 1; round <= ROUNDS; round += 1) rounds.push(await loginRound(api, user, bearer, round, refreshTokens, accessTokens));

    const out: string[] = [
      `login benchmark  node ${process.version}, ${availableParallelism()} CPU(s), UV_THREADPOOL_SIZE=${threadPool}`,
      `argon2id hashPassword x${hashing.samples} (sequential): median ${hashing.medianMs} ms, p95 ${hashing.p95Ms} ms`,
      '',
      table([
        ['round', 'logins', 'ok', 'wall ms', 'logins/s', 'lat p50 ms', 'lat p99 ms', 'lag p50 ms', 'lag p99 ms', 'lag max ms', 'healthz ms', 'api/me ms'],
        ...rounds.map((r) =>
          [r.round, r.logins, r.ok, r.wallMs, r.loginsPerSecond, r.latencyP50Ms, r.latencyP99Ms, r.lagP50Ms, r.lagP99Ms, r.lagMaxMs, r.probeHealthzMs, r.probeMeMs].map(String),
        ),
      ]),
      `(${CONCURRENT_LOGINS} concurrent logins per round; event-loop lag from monitorEventLoopDelay, resolution ${LAG_RESOLUTION_MS} ms, resolution subtracted;`,
      ` healthz / api/me: one request each sent ${PROBE_DELAY_MS} ms into the round, api/me verifies its JWT on the libuv thread pool)`,
    ];
    for (const r of rounds) if (r.failures.length > 0) out.push(`round ${r.round} failures: ${[...new Set(r.failures)].join(', ')}`);
    process.stdout.write(`${out.join('\n')}\n`);
    process.stdout.write(
      `${JSON.stringify({
        bench: 'login',
        node: process.version,
        cpus: availableParallelism(),
        uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE === undefined ? 4 : Number(process.env.UV_THREADPOOL_SIZE),
        uvThreadpoolSizeSet: process.env.UV_THREADPOOL_SIZE !== undefined,
        hash: hashing,
        concurrency: CONCURRENT_LOGINS,
        rounds: rounds.map(({ failures, ...rest }) => ({ ...rest, failures: failures.length })),
      })}\n`,
    );
    return rounds.every((r) => r.failures.length === 0) ? 0 : 1;
  } finally {
    if (api !== undefined) {
      await cleanRedis(api, refreshTokens, accessTokens).catch((error: unknown) => process.stderr.write(`bench cleanup (redis): ${String(error)}\n`));
      await api.stop();
    }
    await database?.destroy();
  }
}
