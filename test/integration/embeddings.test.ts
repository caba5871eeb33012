/**
 * The OpenAI-compatible embeddings client against the local stand-in (test/helpers/embeddings-server.ts), or against
 * the real endpoint named by EMBEDDINGS_BASE_URL (with EMBEDDINGS_API_KEY and EMBEDDINGS_MODEL) for the tests that
 * do not need to inspect or script the server. Failure tests always use the stand-in: a real endpoint cannot be
 * made to fail on demand.
 */
import { expect } from 'chai';
import { createEmbedder, OpenAiEmbedder, HashingEmbedder } from '../../adapters/embeddings/index.js';
import { hashingVector } from '../../adapters/embeddings/hashing.js';
import { AppError, UnavailableError } from '../../shared/errors.js';
import { testConfig } from '../helpers/config.js';
import {
  STAND_IN_DIMENSION,
  embeddingsEndpoint,
  startEmbeddingsServer,
  type EmbeddingsEndpoint,
  type EmbeddingsServer,
  type OpenAiErrorBody,
} from '../helpers/embeddings-server.js';

const dot = (a: number[], b: number[]): number => a.reduce((sum, value, index) => sum + value * (b[index] ?? 0), 0);
const norm = (a: number[]): number => Math.sqrt(dot(a, a));
const texts = (count: number): string[] => Array.from({ length: count }, (_, index) => `Passage ${index}: the ${['red', 'green', 'blue'][index % 3] ?? ''} widget number ${index * 7} ships in ${index % 5} days.`);

async function failure(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(AppError);
    return error as AppError;
  }
  return expect.fail('expected an AppError');
}

describe('embeddings: OpenAI-compatible client', function () {
  this.timeout(60_000);

  describe('against the endpoint (the real one when EMBEDDINGS_BASE_URL is set)', () => {
    let endpoint: EmbeddingsEndpoint;
    const client = (options: { batchSize?: number } = {}): OpenAiEmbedder =>
      new OpenAiEmbedder({ baseUrl: endpoint.url, apiKey: endpoint.apiKey, model: endpoint.model, ...options });

    before(async () => {
      endpoint = await embeddingsEndpoint();
    });
    after(async () => {
      await endpoint.stop();
    });

    it('learns the dimension with one probe on init(), once', async () => {
      const embedder = client();
      expect(() => embedder.dimension).to.throw(/init/);
      endpoint.server?.setScript([]);
      await embedder.init();
      await embedder.init();
      expect(embedder.dimension).to.be.greaterThan(0);
      if (!endpoint.real) {
        expect(embedder.dimension).to.equal(STAND_IN_DIMENSION);
        expect(endpoint.server?.requests).to.have.length(1);
      }
    });

    it('embeds in batches of 64, one unit vector per text, in input order', async () => {
      const embedder = client();
      const inputs = texts(150);
      endpoint.server?.setScript([]);
      const vectors = await embedder.embed(inputs);
      expect(vectors).to.have.length(150);
      for (const vector of vectors) {
        expect(vector).to.have.length(embedder.dimension);
        expect(norm(vector)).to.be.closeTo(1, 1e-6);
      }
      if (endpoint.server !== undefined) {
        const requests = endpoint.server.requests;
        expect(requests.map((request) => request.path)).to.deep.equal(['/v1/embeddings', '/v1/embeddings', '/v1/embeddings']);
        const bodies = requests.map((request) => request.body as { model: string; input: string[] });
        expect(bodies.map((body) => body.input.length)).to.deep.equal([64, 64, 22]);
        expect(bodies.flatMap((body) => body.input)).to.deep.equal(inputs);
        expect(bodies.every((body) => body.model === 'text-embedding-3-small' && Object.keys(body).sort().join() === 'input,model')).to.equal(true);
        expect(requests[0]?.headers['content-type']).to.equal('application/json');
        expect(requests[0]?.headers.authorization).to.equal(undefined);
      }
      // Each vector is the text's own: the same as embedding it alone.
      for (const index of [0, 63, 64, 127, 128, 149]) {
        const [alone = []] = await embedder.embed([inputs[index] ?? '']);
        expect(dot(alone, vectors[index] ?? [])).to.be.greaterThan(0.99);
      }
    });

    it('embeds nothing without a request, and sends a blank text as a space', async () => {
      const embedder = client();
      endpoint.server?.setScript([]);
      expect(await embedder.embed([])).to.deep.equal([]);
      expect(endpoint.server?.requests ?? []).to.have.length(0);
      const vectors = await embedder.embed(['', 'text']);
      expect(vectors).to.have.length(2);
      if (endpoint.server !== undefined) expect((endpoint.server.requests[0]?.body as { input: string[] }).input).to.deep.equal([' ', 'text']);
    });
  });

  describe('against the stand-in', () => {
    let server: EmbeddingsServer;

    before(async () => {
      server = await startEmbeddingsServer();
    });
    after(async () => {
      await server.stop();
    });
    beforeEach(() => server.setScript([]));

    const client = (options: Partial<ConstructorParameters<typeof OpenAiEmbedder>[0]> = {}): OpenAiEmbedder => new OpenAiEmbedder({ baseUrl: server.url, ...options });

    it('sorts answers by index and re-normalises vectors', async () => {
      const reversed = await startEmbeddingsServer({ reverse: true, scale: 7.5 });
      try {
        const embedder = new OpenAiEmbedder({ baseUrl: `${reversed.url}/`, batchSize: 10 });
        const inputs = texts(25);
        const vectors = await embedder.embed(inputs);
        vectors.forEach((vector, index) => {
          expect(norm(vector)).to.be.closeTo(1, 1e-9);
          expect(dot(vector, hashingVector(inputs[index] ?? ''))).to.be.closeTo(1, 1e-9);
        });
        expect(reversed.requests.map((request) => (request.body as { input: string[] }).input.length)).to.deep.equal([10, 10, 5]);
      } finally {
        await reversed.stop();
      }
    });

    it('sends the bearer key and the configured model', async () => {
      const guarded = await startEmbeddingsServer({ apiKey: 'sk-test-123', models: ['nomic-embed-text'] });
      try {
        const embedder = new OpenAiEmbedder({ baseUrl: guarded.url, apiKey: 'sk-test-123', model: 'nomic-embed-text' });
        await embedder.init();
        expect(guarded.requests[0]?.headers.authorization).to.equal('Bearer sk-test-123');
        expect((guarded.requests[0]?.body as { model: string }).model).to.equal('nomic-embed-text');

        const wrongKey = await failure(new OpenAiEmbedder({ baseUrl: guarded.url, apiKey: 'sk-wrong', model: 'nomic-embed-text' }).init());
        expect(wrongKey).to.not.be.instanceOf(UnavailableError);
        expect(wrongKey.code).to.equal('embeddings_error');
        expect(wrongKey.status).to.equal(502);
        expect(wrongKey.message).to.include('401').and.include('invalid_api_key').and.not.include('sk-wrong');

        const unknownModel = await failure(new OpenAiEmbedder({ baseUrl: guarded.url, apiKey: 'sk-test-123', model: 'no-such-model' }).embed(['x']));
        expect(unknownModel.code).to.equal('embeddings_error');
        expect(unknownModel.message).to.include('404').and.include('model_not_found');
      } finally {
        await guarded.stop();
      }
    });

    it('maps 5xx, 429 and 408 to UnavailableError', async () => {
      for (const status of [500, 502, 503, 429, 408]) {
        server.setScript([{ kind: 'status', status }]);
        const error = await failure(client().embed(['x']));
        expect(error, String(status)).to.be.instanceOf(UnavailableError);
        expect(error.code).to.equal('unavailable');
        expect(error.status).to.equal(503);
        expect(error.message).to.include(String(status));
      }
    });

    it('maps a dropped connection, a refused connection and a timeout to UnavailableError', async () => {
      server.setScript([{ kind: 'drop' }]);
      expect(await failure(client().embed(['x']))).to.be.instanceOf(UnavailableError);

      const gone = await startEmbeddingsServer();
      await gone.stop();
      const refused = await failure(new OpenAiEmbedder({ baseUrl: gone.url }).embed(['x']));
      expect(refused).to.be.instanceOf(UnavailableError);
      expect(refused.message).to.equal('could not reach the embeddings endpoint');

      server.setScript([{ kind: 'hang' }]);
      const started = Date.now();
      const timedOut = await failure(client({ timeoutMs: 300 }).embed(['x']));
      expect(timedOut).to.be.instanceOf(UnavailableError);
      expect(timedOut.message).to.include('300 ms');
      expect(Date.now() - started).to.be.lessThan(5000);
    });

    it('maps 4xx to embeddings_error (502), naming the provider type and code but never its message', async () => {
      const error: OpenAiErrorBody = { message: 'This model maximum context length is 8192 tokens: your text "SECRET PASSAGE" is too long', type: 'invalid_request_error', param: 'input', code: 'context_length_exceeded' };
      server.setScript([{ kind: 'status', status: 400, error }]);
      const refused = await failure(client().embed(['SECRET PASSAGE']));
      expect(refused).to.not.be.instanceOf(UnavailableError);
      expect(refused.code).to.equal('embeddings_error');
      expect(refused.status).to.equal(502);
      expect(refused.message).to.equal('the embeddings endpoint refused the request (400 (invalid_request_error/context_length_exceeded))');
    });

    it('refuses answers that do not fit the documented shape with embeddings_error', async () => {
      const shapes: unknown[] = [
        { object: 'list' },
        { data: [{ index: 0, embedding: [0.1, 0.2] }] }, // one vector for two inputs
        { data: [{ index: 0, embedding: [0.1, 0.2] }, { index: 0, embedding: [0.3, 0.4] }] }, // duplicate index
        { data: [{ index: 0, embedding: [0.1, 0.2] }, { index: 5, embedding: [0.3, 0.4] }] }, // index out of range
        { data: [{ index: 0, embedding: [0.1, 0.2] }, { index: 1, embedding: [0.3] }] }, // sizes differ
        { data: [{ index: 0, embedding: [0, 0] }, { index: 1, embedding: [0.3, 0.4] }] }, // zero vector
        { data: [{ index: 0, embedding: 'AAAA' }, { index: 1, embedding: 'AAAA' }] }, // base64 not asked for
      ];
      for (const body of shapes) {
        server.setScript([{ kind: 'json', body }]);
        const error = await failure(client().embed(['a', 'b']));
        expect(error.code, JSON.stringify(body)).to.equal('embeddings_error');
        expect(error.status).to.equal(502);
      }
      server.setScript([{ kind: 'garbage' }]);
      expect((await failure(client().embed(['a']))).code).to.equal('embeddings_error');
    });

    it('refuses a batch whose dimension differs from the one learned', async () => {
      const embedder = client({ batchSize: 1 });
      await embedder.init();
      server.setScript([{ kind: 'json', body: { data: [{ index: 0, embedding: [1, 0, 0] }] } }]);
      const error = await failure(embedder.embed(['x']));
      expect(error.code).to.equal('embeddings_error');
      expect(error.message).to.include(`expected ${STAND_IN_DIMENSION}`);
      expect(client({ dimension: 3 }).dimension).to.equal(3);
    });

    it('lets init() be retried after a failed probe', async () => {
      const embedder = client();
      server.setScript([{ kind: 'status', status: 503 }]);
      expect(await failure(embedder.init())).to.be.instanceOf(UnavailableError);
      await embedder.init();
      expect(embedder.dimension).to.equal(STAND_IN_DIMENSION);
    });

    it('is what createEmbedder gives when EMBEDDINGS_BASE_URL is set, dimension probed', async () => {
      const config = testConfig({ EMBEDDINGS_BASE_URL: server.url, EMBEDDINGS_MODEL: 'text-embedding-3-large' });
      const embedder = await createEmbedder(config);
      expect(embedder).to.be.instanceOf(OpenAiEmbedder);
      expect(embedder.model).to.equal('text-embedding-3-large');
      expect(embedder.dimension).to.equal(STAND_IN_DIMENSION);
      expect(server.requests).to.have.length(1);
      expect(await createEmbedder(testConfig())).to.be.instanceOf(HashingEmbedder);

      server.setScript([{ kind: 'status', status: 503 }]);
      expect(await failure(createEmbedder(config))).to.be.instanceOf(UnavailableError);
    });
  });

  describe('the stand-in', () => {
    let server: EmbeddingsServer;
    before(async () => {
      server = await startEmbeddingsServer();
    });
    after(async () => {
      await server.stop();
    });

    const post = async (body: string, path = '/embeddings'): Promise<{ status: number; json: unknown }> => {
      const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      return { status: response.status, json: await response.json() };
    };

    it('answers with the documented response shape', async () => {
      const { status, json } = await post(JSON.stringify({ model: 'm', input: 'hello', encoding_format: 'float', dimensions: 8, user: 'u-1' }));
      expect(status).to.equal(200);
      const answer = json as { object: string; model: string; data: { object: string; index: number; embedding: number[] }[]; usage: { prompt_tokens: number; total_tokens: number } };
      expect(answer.object).to.equal('list');
      expect(answer.model).to.equal('m');
      expect(answer.data).to.have.length(1);
      expect(answer.data[0]?.object).to.equal('embedding');
      expect(answer.data[0]?.index).to.equal(0);
      expect(answer.data[0]?.embedding).to.have.length(8);
      expect(answer.usage.total_tokens).to.be.greaterThan(0);
      const base64 = await post(JSON.stringify({ model: 'm', input: ['hello'], encoding_format: 'base64' }));
      const encoded = (base64.json as { data: { embedding: string }[] }).data[0]?.embedding ?? '';
      expect(Buffer.from(encoded, 'base64').length).to.equal(STAND_IN_DIMENSION * 4);
    });

    it('refuses malformed bodies with OpenAI-shaped errors', async () => {
      const cases: [string, string | null][] = [
        ['{not json', null],
        ['[]', null],
        [JSON.stringify({ input: 'x' }), 'model'],
        [JSON.stringify({ model: 'm' }), 'input'],
        [JSON.stringify({ model: 'm', input: '' }), 'input'],
        [JSON.stringify({ model: 'm', input: [] }), 'input'],
        [JSON.stringify({ model: 'm', input: ['ok', ''] }), 'input'],
        [JSON.stringify({ model: 'm', input: [[1, 2, 3]] }), 'input'],
        [JSON.stringify({ model: 'm', input: 42 }), 'input'],
        [JSON.stringify({ model: 'm', input: Array.from({ length: 2049 }, () => 'x') }), 'input'],
        [JSON.stringify({ model: 'm', input: 'x', encoding_format: 'int8' }), 'encoding_format'],
        [JSON.stringify({ model: 'm', input: 'x', dimensions: 0 }), 'dimensions'],
        [JSON.stringify({ model: 'm', input: 'x', temperature: 1 }), 'temperature'],
      ];
      for (const [body, param] of cases) {
        const { status, json } = await post(body);
        expect(status, body.slice(0, 60)).to.equal(400);
        const error = (json as { error: OpenAiErrorBody }).error;
        expect(Object.keys(error).sort()).to.deep.equal(['code', 'message', 'param', 'type']);
        expect(error.type).to.equal('invalid_request_error');
        expect(error.param, body.slice(0, 60)).to.equal(param);
        expect(error.message).to.be.a('string').and.not.equal('');
      }
      const notFound = await post(JSON.stringify({ model: 'm', input: 'x' }), '/chat/completions');
      expect(notFound.status).to.equal(404);
      expect((notFound.json as { error: OpenAiErrorBody }).error.type).to.equal('invalid_request_error');
    });
  });
});
