import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createStorage } from '../../adapters/storage/index.js';
import { configureProcessLogging } from '../../shared/kernel.js';
import { IMAGE_NODE_OPTIONS } from '../../shared/runtime.js';
import { apiTestConfig, createTestUser, loginTokens, startTestApi, type TestApi } from '../../test/helpers/api.js';
import { uniqueQueuePrefix } from '../../test/helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { httpRequest, json, multipartFrame, waitForStored } from '../../test/helpers/files.js';
import { childEnv, sharedSettingsEnv, makeTempDir, REPO_ROOT } from '../../test/helpers/process.js';
import { round1 } from './stats.js';

/**
 * Files benchmark, against the S3-compatible server of the tests (Swift with s3api; started when
 * BOTSERVER_TEST_S3_ENDPOINT is unset): the same N MiB file (default 1024) uploaded
 *   - plain: the AWS SDK's own multipart upload (lib-storage, its default part and queue sizes, SSE AES256) of the
 *     plaintext file, the bare engine, and
 *   - encrypted: the `files` worker's job (the staged ciphertext — sealed by the API as it arrived, under the
 *     file's own data key in 64 KiB AES-256-GCM records — checked and stored by the storage adapter's multipart
 *     upload from reused part buffers), timed
 *     from the job's start to `stored`, the worker in its own process so its peak RSS (VmHWM) is its own; the API's
 *     receiving of the upload (sniffing, counting, encrypting into staging) is reported beside it, and end to end.
 * Prints both throughputs and their ratio (goal ≥ 0.8) and the worker's peak RSS (goal < 150 MB).
 */

const DEFAULT_MIB = 1024;
const MIB = 1024 * 1024;
const FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'files-worker.ts');

function s3Endpoint(): string {
  const configured = process.env.BOTSERVER_TEST_S3_ENDPOINT;
  if (configured !== undefined && configured !== '') return configured;
  const started = spawnSync('bash', [join(REPO_ROOT, 'scripts', 'services.sh'), '--s3'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (started.status !== 0) throw new Error('the S3-compatible test server could not be started (scripts/services.sh --s3)');
  return `http://127.0.0.1:${process.env.BOTSERVER_TEST_S3_PORT ?? '9010'}`;
}

async function writeTextFile(path: string, mebibytes: number): Promise<void> {
  const out = createWriteStream(path);
  const block = Buffer.from(randomBytes(MIB).toString('base64').slice(0, MIB));
  for (let index = 0; index < mebibytes; index += 1) {
    if (!out.write(block)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  out.end();
  await finished(out);
}

function statusMb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return match === null ? Number.NaN : round1(Number(match[1]) / 1024);
}

const peakRssMb = (pid: number): number => statusMb(pid, 'VmHWM');
const residentMb = (pid: number): number => statusMb(pid, 'VmRSS');

async function uploadThroughApi(api: TestApi, token: string, path: string): Promise<string> {
  const frame = multipartFrame('bench.txt');
  const size = statSync(path).size;
  async function* body(): AsyncGenerator<Buffer> {
    yield frame.head;
    for await (const chunk of createReadStream(path, { highWaterMark: MIB }) as AsyncIterable<Buffer>) yield chunk;
    yield frame.tail;
  }
  const answer = await httpRequest(`${api.url}/api/files`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': `multipart/form-data; boundary=${frame.boundary}`, 'content-length': String(frame.head.length + size + frame.tail.length) },
    body: Readable.from(body()),
    timeoutMs: 600_000,
  });
  if (answer.status !== 202) throw new Error(`upload answered ${answer.status}: ${answer.body.toString()}`);
  return String(json(answer).id);
}

interface Options {
  mebibytes: number;
  /** Run the worker as the container image does: `npm run build`, then `node dist/scripts/cli.js worker files`. */
  compiled: boolean;
}

function parseArgs(args: string[]): Options | undefined {
  const options: Options = { mebibytes: DEFAULT_MIB, compiled: false };
  for (let index = 0; index < args.length; index += 1) {
    const flag = args[index];
    if (flag === '--compiled') options.compiled = true;
    else if (flag === '--mib' && /^\d+$/.test(args[index + 1] ?? '')) options.mebibytes = Number(args[(index += 1)]);
    else return undefined;
  }
  return Number.isInteger(options.mebibytes) && options.mebibytes >= 1 && options.mebibytes <= 8192 ? options : undefined;
}

/** The worker process: the test fixture under tsx (the development flow), or the compiled CLI with the image's Node options. */
function spawnWorker(compiledDir: string | undefined, env: NodeJS.ProcessEnv): ChildProcess {
  if (compiledDir === undefined) return spawn(process.execPath, ['--import', 'tsx', FIXTURE], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'], env });
  return spawn(process.execPath, [join(compiledDir, 'scripts', 'cli.js'), 'worker', 'files'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...env, NODE_OPTIONS: IMAGE_NODE_OPTIONS },
  });
}

export async function run(args: string[]): Promise<number> {
  const options = parseArgs(args);
  if (options === undefined) {
    process.stderr.write(`usage: npm run bench -- files [--mib N (default ${DEFAULT_MIB})] [--compiled (the worker as the image runs it: compiled JavaScript)]\n`);
    return 2;
  }
  const { mebibytes } = options;
  let compiledDir: string | undefined;
  if (options.compiled) {
    compiledDir = join(REPO_ROOT, '.test-run', 'bench-dist');
    const built = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'build.ts'), '--out-dir', compiledDir], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (built.status !== 0) throw new Error('npm run build failed');
  }
  const endpoint = s3Endpoint();
  const bucket = `botserver-bench-${randomBytes(4).toString('hex')}`;
  const s3Env = { S3_ENDPOINT: endpoint, S3_BUCKET: bucket, S3_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test:tester', AWS_SECRET_ACCESS_KEY: 'testing' };
  const dir = makeTempDir('botserver-bench-files-');
  const path = join(dir, 'plain.txt');
  let database: TestDatabase | undefined;
  let api: TestApi | undefined;
  let worker: ChildProcess | undefined;
  try {
    await writeTextFile(path, mebibytes);
    database = await createTestDatabase();
    const prefix = uniqueQueuePrefix();
    const config = apiTestConfig(database.url, { ...s3Env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', BOTSERVER_MAX_UPLOAD_SIZE: String((mebibytes + 1) * MIB) });
    configureProcessLogging(config, 'botserver-bench');
    const storage = createStorage(config);
    await storage.ensureReady();

    // The bare engine: the plaintext file, multipart-uploaded by the SDK's own helper to the same bucket.
    const client = new S3Client({
      endpoint,
      region: s3Env.S3_REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: s3Env.AWS_ACCESS_KEY_ID, secretAccessKey: s3Env.AWS_SECRET_ACCESS_KEY },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const plainStarted = performance.now();
    await new Upload({ client, params: { Bucket: bucket, Key: 'bench/plain', Body: createReadStream(path, { highWaterMark: MIB }), ServerSideEncryption: 'AES256' } }).done();
    const plainSeconds = (performance.now() - plainStarted) / 1000;
    client.destroy();
    await storage.delete('bench/plain');

    api = await startTestApi(config, prefix);
    const user = await createTestUser(config, { role: 'user' });
    const token = (await loginTokens(api, user)).accessToken;
    // The worker starts first and waits: its resident memory before the job is the baseline the job adds to.
    worker = spawnWorker(compiledDir, childEnv({ ...s3Env, ...sharedSettingsEnv(config), LOG_LEVEL: 'error', TEST_QUEUE_PREFIX: prefix, BOTSERVER_QUEUE_PREFIX: prefix }));
    const queue = api.kernel.queues.queue('file-encrypt');
    while ((await queue.getWorkersCount()) === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const workerIdleMb = worker.pid === undefined ? Number.NaN : residentMb(worker.pid);

    const uploadStarted = performance.now();
    const fileId = await uploadThroughApi(api, token, path);
    const stagingSeconds = (performance.now() - uploadStarted) / 1000;
    let jobStarted = performance.now();
    while ((await queue.getActiveCount()) === 0 && (await queue.getCompletedCount()) === 0) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      jobStarted = performance.now();
    }
    const info = await waitForStored(api.url, token, fileId, 1_800_000);
    const encryptedSeconds = (performance.now() - jobStarted) / 1000;
    const workerPeakMb = worker.pid === undefined ? Number.NaN : peakRssMb(worker.pid);
    if (info.status !== 'stored') throw new Error(`the file ended ${String(info.status)}`);

    const plainMbps = round1(mebibytes / plainSeconds);
    const encryptedMbps = round1(mebibytes / encryptedSeconds);
    const result = {
      bench: 'files',
      node: process.version,
      cpus: availableParallelism(),
      mebibytes,
      plainUploadMiBps: plainMbps,
      encryptedUploadMiBps: encryptedMbps,
      ratio: Math.round((encryptedMbps / plainMbps) * 100) / 100,
      apiStagingMiBps: round1(mebibytes / stagingSeconds),
      endToEndMiBps: round1(mebibytes / (stagingSeconds + encryptedSeconds)),
      workerIdleRssMb: workerIdleMb,
      workerPeakRssMb: workerPeakMb,
    };
    process.stdout.write(
      [
        `files benchmark  node ${process.version}, ${availableParallelism()} CPU(s); OpenStack Swift (s3api) at ${endpoint} on this machine; ${mebibytes} MiB`,
        `plain multipart upload (bare SDK, lib-storage)   ${plainMbps} MiB/s   (${round1(plainSeconds)} s)`,
        `encrypted, files worker (staged ciphertext verified → S3)  ${encryptedMbps} MiB/s   (${round1(encryptedSeconds)} s)   ratio ${result.ratio} (goal ≥ 0.8)`,
        `API receiving the upload (sniff, count, encrypt into staging)  ${result.apiStagingMiBps} MiB/s   (${round1(stagingSeconds)} s)`,
        `end to end, upload request to stored (both steps one after the other)  ${result.endToEndMiBps} MiB/s`,
        `files worker peak RSS                      ${workerPeakMb} MB (goal < 150 MB; idle before the job ${workerIdleMb} MB; ${options.compiled ? `compiled JavaScript with NODE_OPTIONS=${IMAGE_NODE_OPTIONS}, as in the image` : 'TypeScript through tsx'})`,
        JSON.stringify(result),
        '',
      ].join('\n'),
    );
    return 0;
  } finally {
    worker?.kill('SIGTERM');
    if (api !== undefined) {
      await api.kernel.queues.queue('file-encrypt').obliterate({ force: true }).catch(() => undefined);
      await api.stop();
    }
    await database?.destroy();
  }
}
