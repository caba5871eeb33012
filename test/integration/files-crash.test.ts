import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { createStorage } from '../../adapters/storage/index.js';
import type { Config } from '../../shared/config/index.js';
import { storageKeyOf } from '../../shared/files/index.js';
import { apiTestConfig, createTestUser, loginTokens, startTestApi, type TestApi } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { fileInfo, httpRequest, json, uploadStream, waitForStored } from '../helpers/files.js';
import { childEnv, sharedSettingsEnv, REPO_ROOT, waitFor } from '../helpers/process.js';
import { requireS3, type S3TestSettings } from '../helpers/s3.js';

const FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'files-worker.ts');
const MIB = 1024 * 1024;
const FILE_MIB = 200;

/** The keys of the bucket's unfinished multipart uploads. */
async function unfinishedUploads(settings: S3TestSettings): Promise<string[]> {
  const client = new S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: true,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
  });
  try {
    const page = await client.send(new ListMultipartUploadsCommand({ Bucket: settings.bucket }));
    return (page.Uploads ?? []).map((upload) => upload.Key ?? '');
  } finally {
    client.destroy();
  }
}

/** Every file below `dir` (staging files, a storage folder's temporary files). */
function filesBelow(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
  } catch {
    return [];
  }
}

for (const backend of ['local', 's3'] as const) {
  describe(`files on ${backend} storage: a worker killed in the middle of a ${FILE_MIB} MB file`, function () {
    this.timeout(240_000);
    let database: TestDatabase;
    let config: Config;
    let prefix: string;
    let api: TestApi;
    let s3Env: Record<string, string> = {};
    let s3: S3TestSettings | undefined;
    const children = new Set<ChildProcess>();

    before(async function () {
      s3 = backend === 's3' ? requireS3(this, 'crash') : undefined;
      s3Env = s3?.env() ?? {};
      database = await createTestDatabase();
      prefix = uniqueQueuePrefix();
      config = apiTestConfig(database.url, { ...s3Env, BOTSERVER_MAX_UPLOAD_SIZE: String(256 * MIB), BOTSERVER_JOB_LOCK_MS: '2000' });
      api = await startTestApi(config, prefix);
    });
    after(async () => {
      for (const child of children) child.kill('SIGKILL');
      await api?.kernel.queues.queue('file-encrypt').obliterate({ force: true });
      await api?.stop();
      await database?.destroy();
    });

    function startWorker(): ChildProcess {
      const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'ignore', 'inherit'],
        env: childEnv({
          ...s3Env,
          ...sharedSettingsEnv(config),
          BOTSERVER_JOB_LOCK_MS: '2000',
          LOG_LEVEL: 'error',
          TEST_QUEUE_PREFIX: prefix,
        }),
      });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    }

    it('a staged file cut short before the worker runs ends failed, and nothing is stored', async () => {
      const user = await createTestUser(config, { role: 'user' });
      const token = (await loginTokens(api, user)).accessToken;
      const upload = await uploadStream(api.url, token, 'cut.txt', [Buffer.from('x'.repeat(300_000))]);
      expect(upload.status, upload.body.toString()).to.equal(202);
      const id = String(json(upload).id);
      const staged = filesBelow(join(config.dataDir, 'staging')).find((path) => path.endsWith(`${id}.staged`));
      expect(staged, 'the upload waits in staging, encrypted').to.be.a('string');
      const bytes = readFileSync(staged ?? '');
      expect(bytes.includes(Buffer.from('xxxxxxxxxxxxxxxx')), 'no plaintext in staging').to.equal(false);
      writeFileSync(staged ?? '', bytes.subarray(0, bytes.length - 1000));
      const worker = startWorker();
      const info = await waitForStored(api.url, token, id, 60_000);
      worker.kill('SIGTERM');
      expect(info.status).to.equal('failed');
      expect(String(info.failureReason)).to.match(/does not authenticate/);
      expect(filesBelow(join(config.dataDir, 'staging')).filter((path) => path.includes(id))).to.deep.equal([]);
      const storage = createStorage(config);
      expect(await storage.head(storageKeyOf(user.tenantId, id))).to.equal(undefined);
      await storage.close();
    });

    it('ends stored after a restart, byte-identical, with no temp file left', async () => {
      const user = await createTestUser(config, { role: 'user' });
      const token = (await loginTokens(api, user)).accessToken;
      const block = Buffer.from(randomBytes(MIB).toString('base64').slice(0, MIB));
      const expected = createHash('sha256');
      function* content(): Generator<Buffer> {
        for (let index = 0; index < FILE_MIB; index += 1) {
          const piece = Buffer.concat([Buffer.from(`${index}\n`), block.subarray(0, MIB - 8)]);
          expected.update(piece);
          yield piece;
        }
      }
      const upload = await uploadStream(api.url, token, 'large.txt', content());
      expect(upload.status, upload.body.toString()).to.equal(202);
      const id = String(json(upload).id);
      const sha256 = expected.digest('hex');

      const first = startWorker();
      const queue = api.kernel.queues.queue('file-encrypt');
      await waitFor(async () => (await queue.getActiveCount()) > 0, 30_000, 20);
      if (backend === 'local') {
        // Storing to a local folder is fast: kill as soon as the object's temporary file holds part of the file.
        await waitFor(() => filesBelow(join(config.dataDir, 'files')).some((path) => path.endsWith('.tmp') && (statSync(path, { throwIfNoEntry: false })?.size ?? 0) > 8 * MIB), 30_000, 5);
      } else {
        // Kill once the multipart upload is under way: the server holds some parts of an object not yet complete.
        await waitFor(async () => (await unfinishedUploads(s3!)).length > 0, 30_000, 20);
      }
      first.kill('SIGKILL');
      await new Promise((resolve) => first.once('exit', resolve));
      expect(json(await fileInfo(api.url, token, id)).status, 'killed before it finished').to.equal('pending');

      startWorker();
      const info = await waitForStored(api.url, token, id, 180_000);
      expect(info.status).to.equal('stored');
      expect(info.sha256).to.equal(sha256);
      expect(info.size).to.equal(FILE_MIB * MIB - FILE_MIB * 8 + [...Array(FILE_MIB).keys()].reduce((sum, index) => sum + `${index}\n`.length, 0));

      const downloaded = createHash('sha256');
      const answer = await httpRequest(`${api.url}/api/files/${id}/content`, { headers: { authorization: `Bearer ${token}` } });
      expect(answer.status).to.equal(200);
      downloaded.update(answer.body);
      expect(downloaded.digest('hex')).to.equal(sha256);

      await waitFor(() => filesBelow(join(config.dataDir, 'staging')).length === 0, 10_000);
      const leftovers = filesBelow(join(config.dataDir, 'files')).filter((path) => !path.endsWith(id));
      expect(leftovers, 'temporary files in the storage folder').to.deep.equal([]);
      if (s3 !== undefined) expect(await unfinishedUploads(s3), 'the killed upload was aborted').to.deep.equal([]);
    });
  });
}
