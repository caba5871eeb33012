import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, loginTokens, startTestApi, type TestApi } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { downloadSha256, json, uploadStream, waitForStored } from '../helpers/files.js';
import { requireS3 } from '../helpers/s3.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

for (const backend of ['local', 's3'] as const) {
  describe(`files on ${backend} storage: a 1 GiB round trip`, function () {
    this.timeout(300_000);
    let database: TestDatabase;
    let api: TestApi;
    let workers: RunningWorkers;

    before(async function () {
      const env = backend === 's3' ? requireS3(this, 'large').env() : {};
      database = await createTestDatabase();
      const prefix = uniqueQueuePrefix();
      const config = apiTestConfig(database.url, { ...env, BOTSERVER_MAX_UPLOAD_SIZE: String(GIB) });
      api = await startTestApi(config, prefix);
      workers = await startWorkers(config, 'files', { queuePrefix: prefix });
    });
    after(async () => {
      await workers?.shutdown();
      await api?.stop();
      await database?.destroy();
    });

    it('streams 1 GiB in, encrypts it to storage and streams the same bytes out', async () => {
      const token = (await loginTokens(api, await createTestUser(api.config, { role: 'user' }))).accessToken;
      const block = Buffer.from(randomBytes(MIB).toString('base64').slice(0, MIB));
      const expected = createHash('sha256');
      function* content(): Generator<Buffer> {
        for (let index = 0; index < GIB / MIB; index += 1) {
          block.write(index.toString(16).padStart(8, '0'), 0, 'latin1');
          expected.update(block);
          yield Buffer.from(block);
        }
      }
      const upload = await uploadStream(api.url, token, 'one-gib.txt', content());
      expect(upload.status, upload.body.toString()).to.equal(202);
      const id = String(json(upload).id);
      const sha256 = expected.digest('hex');
      const info = await waitForStored(api.url, token, id, 240_000);
      expect(info).to.include({ status: 'stored', size: GIB, sha256 });
      const downloaded = await downloadSha256(api.url, token, id);
      expect(downloaded).to.deep.equal({ status: 200, sha256, bytes: GIB });
    });
  });
}
