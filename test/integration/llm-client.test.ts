/**
 * The OpenAI-compatible client against a local server that speaks the documented chat-completions shapes, or,
 * when LLM_BASE_URL is set, against that real endpoint (LLM_API_KEY, LLM_MODEL): then only the request and
 * streaming cases run, and they assert only a non-empty reply whose deltas join to it.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import {
  DEFAULT_LLM_MODEL,
  FALLBACK_REPLY,
  LlmError,
  OpenAiChatClient,
  createReplyEngine,
  type BotProfile,
  type LlmErrorCode,
  type OpenAiChatClientOptions,
  type ReplyRequest,
} from '../../adapters/llm/index.js';
import { SseParser, type SseEvent } from '../../adapters/llm/sse.js';
import { log } from '../../shared/log/index.js';
import { startLlmServer, type LlmServer, type LlmStep } from '../helpers/llm-server.js';

const REAL_URL = process.env.LLM_BASE_URL === undefined || process.env.LLM_BASE_URL === '' ? undefined : process.env.LLM_BASE_URL;
const API_KEY = 'sk-test-0123456789abcdef';
const PROVIDER_SECRET_TEXT = 'provider-detail-that-must-not-leak';

const bot = (llm: BotProfile['llm'] = {}, rules: BotProfile['rules'] = []): BotProfile => ({ name: 'Helper', rules, llm });
const ask = (message: string, extra: Partial<ReplyRequest> = {}): ReplyRequest => ({ bot: bot(), history: [], message, ...extra });

interface Outcome {
  deltas: string[];
  text?: string;
  error?: unknown;
}

async function run(client: OpenAiChatClient, request: ReplyRequest): Promise<Outcome> {
  const deltas: string[] = [];
  try {
    const text = await client.reply(request, (delta) => void deltas.push(delta));
    return { deltas, text };
  } catch (error) {
    return { deltas, error };
  }
}

function expectLlmError(outcome: Outcome, code: LlmErrorCode): LlmError {
  if (!(outcome.error instanceof LlmError)) return expect.fail(`expected LlmError ${code}, got ${outcome.text === undefined ? String(outcome.error) : `text "${outcome.text}"`}`);
  expect(outcome.error.code).to.equal(code);
  expect(outcome.error.expose).to.equal(false);
  expect(outcome.error.message).not.to.include(PROVIDER_SECRET_TEXT);
  expect(outcome.error.message).not.to.include(API_KEY);
  return outcome.error;
}

describe(`LLM chat client (${REAL_URL === undefined ? 'local chat-completions server' : 'real endpoint from LLM_BASE_URL'})`, function () {
  let server: LlmServer | undefined;

  before(async function () {
    if (REAL_URL === undefined) server = await startLlmServer();
    log.silent = true; // retries are logged at info; keep the test output readable
  });

  after(async function () {
    log.silent = false;
    await server?.stop();
  });

  const local = (context: Mocha.Context): LlmServer => {
    if (server === undefined) context.skip();
    return server;
  };

  const script = (context: Mocha.Context, steps: LlmStep[]): LlmServer => {
    const target = local(context);
    target.setScript(steps);
    return target;
  };

  const client = (options: Partial<OpenAiChatClientOptions> = {}): OpenAiChatClient =>
    new OpenAiChatClient({
      baseUrl: REAL_URL ?? server?.url ?? '',
      apiKey: REAL_URL === undefined ? API_KEY : process.env.LLM_API_KEY,
      model: REAL_URL === undefined ? 'test-model' : process.env.LLM_MODEL,
      retryBaseDelayMs: 10,
      firstByteTimeoutMs: REAL_URL === undefined ? 2000 : 30_000,
      totalTimeoutMs: REAL_URL === undefined ? 10_000 : 60_000,
      ...options,
    });

  /** Real endpoint mode: the reply is non-empty and is exactly its deltas joined. */
  const expectWholeReply = (outcome: Outcome): void => {
    expect(outcome.error).to.equal(undefined);
    expect(outcome.text).to.be.a('string').and.not.equal('');
    expect(outcome.deltas.join('')).to.equal(outcome.text);
  };

  describe('request and streaming', function () {
    it('sends model, messages (system prompt, history with mapped roles, new message), temperature, stream:true and the bearer key', async function () {
      server?.setScript([{ kind: 'stream', deltas: ['Sure', '.'] }]);
      const request: ReplyRequest = {
        bot: bot({ systemPrompt: 'You are terse.', temperature: 0.2 }),
        history: [
          { role: 'user', text: 'Hi, I am Ada.' },
          { role: 'bot', text: 'Hello Ada.' },
        ],
        message: 'What is my name? Answer with one word.',
      };
      const outcome = await run(client(), request);
      expectWholeReply(outcome);
      if (server === undefined) return;
      expect(server.requests).to.have.length(1);
      const [received] = server.requests;
      expect(received?.method).to.equal('POST');
      expect(received?.path).to.equal('/v1/chat/completions');
      expect(received?.headers.authorization).to.equal(`Bearer ${API_KEY}`);
      expect(received?.headers['content-type']).to.match(/^application\/json/);
      expect(received?.body).to.deep.equal({
        model: 'test-model',
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'user', content: 'Hi, I am Ada.' },
          { role: 'assistant', content: 'Hello Ada.' },
          { role: 'user', content: 'What is my name? Answer with one word.' },
        ],
        temperature: 0.2,
        stream: true,
      });
      expect(outcome.text).to.equal('Sure.');
    });

    it('streams deltas in order and resolves with them joined', async function () {
      const deltas = ['Hel', 'lo', ', wör', 'ld ', '🎉', ' — done.'];
      server?.setScript([{ kind: 'stream', deltas, delayMs: 5 }]);
      const outcome = await run(client(), ask('Say hello in five words.'));
      expectWholeReply(outcome);
      if (server !== undefined) expect(outcome.deltas).to.deep.equal(deltas);
    });

    it('parses a stream split anywhere (mid-line, mid-JSON, mid-UTF-8), with CRLF, comments and multi-line data', async function () {
      const deltas = ['Grüße', ' aus ', '東京', ' 🎌', '\nline two'];
      const target = script(this, [{ kind: 'stream', deltas, splitBytes: 3, crlf: true, comments: true, multiLineData: true }]);
      const outcome = await run(client(), ask('hi'));
      expect(outcome.error).to.equal(undefined);
      expect(outcome.deltas).to.deep.equal(deltas);
      expect(outcome.text).to.equal(deltas.join(''));
      expect(target.requests).to.have.length(1);
    });

    it('takes choices[0].message.content from a non-streaming JSON answer (and hands it over as one delta)', async function () {
      script(this, [{ kind: 'json', content: 'A whole answer at once.' }]);
      const outcome = await run(client(), ask('hi'));
      expect(outcome.text).to.equal('A whole answer at once.');
      expect(outcome.deltas).to.deep.equal(['A whole answer at once.']);
    });

    it("uses the bot's model, else the configured one, else the default; no Authorization header without a key", async function () {
      const target = script(this, [{ kind: 'json', content: 'ok' }]);
      await client().reply(ask('a', { bot: bot({ model: 'bot-model' }) }));
      await client().reply(ask('b'));
      await client({ model: undefined, apiKey: undefined }).reply(ask('c'));
      const models = target.requests.map((request) => (request.body as { model: string }).model);
      expect(models).to.deep.equal(['bot-model', 'test-model', DEFAULT_LLM_MODEL]);
      expect(target.requests[2]?.headers.authorization).to.equal(undefined);
      expect(target.requests[1]?.body).not.to.have.property('temperature');
      expect((target.requests[1]?.body as { messages: unknown[] }).messages).to.deep.equal([{ role: 'user', content: 'b' }]);
    });

    it('joins paths with a base URL given without /v1 or with a trailing slash', function () {
      const target = local(this);
      const base = target.url.replace(/\/v1$/, '');
      expect(client({ baseUrl: base }).endpoint).to.equal(`${base}/chat/completions`);
      expect(client({ baseUrl: `${base}/v1/` }).endpoint).to.equal(`${base}/v1/chat/completions`);
      expect(client({ baseUrl: `${base}/v1` }).endpoint).to.equal(`${base}/v1/chat/completions`);
    });
  });

  describe('retries', function () {
    it('retries a 429 after the Retry-After it was given, then succeeds', async function () {
      const target = script(this, [{ kind: 'status', status: 429, retryAfter: '1' }, { kind: 'stream', deltas: ['ok'] }]);
      const outcome = await run(client(), ask('hi'));
      expect(outcome.text).to.equal('ok');
      expect(target.requests).to.have.length(2);
      const waited = (target.requests[1]?.receivedAt ?? 0) - (target.requests[0]?.receivedAt ?? 0);
      expect(waited).to.be.at.least(950);
    });

    it('caps a long Retry-After at maxRetryDelayMs and honours retry-after-ms', async function () {
      const target = script(this, [
        { kind: 'status', status: 429, retryAfter: '3600' },
        { kind: 'status', status: 503, retryAfterMs: '20' },
        { kind: 'stream', deltas: ['ok'] },
      ]);
      const started = Date.now();
      const outcome = await run(client({ maxRetryDelayMs: 50 }), ask('hi'));
      expect(outcome.text).to.equal('ok');
      expect(target.requests).to.have.length(3);
      expect(Date.now() - started).to.be.below(2000);
    });

    it('retries 500, 500, then succeeds', async function () {
      const target = script(this, [{ kind: 'status', status: 500 }, { kind: 'status', status: 502 }, { kind: 'stream', deltas: ['fine'] }]);
      const outcome = await run(client(), ask('hi'));
      expect(outcome.text).to.equal('fine');
      expect(target.requests).to.have.length(3);
    });

    it('gives up after maxRetries with a retryable llm_rate_limited', async function () {
      const target = script(this, [{ kind: 'status', status: 429, error: { message: PROVIDER_SECRET_TEXT, type: 'requests', code: 'rate_limit_exceeded' } }]);
      const error = expectLlmError(await run(client({ maxRetries: 2 }), ask('hi')), 'llm_rate_limited');
      expect(error.retryable).to.equal(true);
      expect(error.upstreamStatus).to.equal(429);
      expect(error.message).to.include('rate_limit_exceeded');
      expect(target.requests).to.have.length(3);
    });

    for (const status of [400, 401, 404, 422]) {
      it(`does not retry a ${status}: one request, llm_bad_request, not retryable, without the provider's message`, async function () {
        const target = script(this, [{ kind: 'status', status, error: { message: PROVIDER_SECRET_TEXT, type: 'invalid_request_error', code: null } }]);
        const error = expectLlmError(await run(client(), ask('hi')), 'llm_bad_request');
        expect(error.retryable).to.equal(false);
        expect(error.upstreamStatus).to.equal(status);
        expect(target.requests).to.have.length(1);
      });
    }

    it('retries a connection that drops before any delta was delivered', async function () {
      const target = script(this, [{ kind: 'stream', deltas: ['x'], dropAfter: 0 }, { kind: 'stream', deltas: ['second', ' try'] }]);
      const outcome = await run(client(), ask('hi'));
      expect(outcome.text).to.equal('second try');
      expect(outcome.deltas).to.deep.equal(['second', ' try']);
      expect(target.requests).to.have.length(2);
    });

    it('retries a network failure (nothing listening) and then reports llm_unavailable', async function () {
      local(this);
      const started = Date.now();
      const error = expectLlmError(await run(client({ baseUrl: 'http://127.0.0.1:9/v1', maxRetries: 2 }), ask('hi')), 'llm_unavailable');
      expect(error.retryable).to.equal(true);
      expect(Date.now() - started).to.be.below(2000);
    });
  });

  describe('failures mid-stream are errors, never a truncated success', function () {
    it('an error object after the first deltas: llm_stream_error, retryable, partial, no retry', async function () {
      const target = script(this, [
        { kind: 'stream', deltas: ['one', ' two', ' three'], errorAfter: 2, error: { message: PROVIDER_SECRET_TEXT, type: 'server_error', code: null } },
        { kind: 'stream', deltas: ['should not be asked'] },
      ]);
      const outcome = await run(client(), ask('hi'));
      const error = expectLlmError(outcome, 'llm_stream_error');
      expect(error.retryable).to.equal(true);
      expect(error.partial).to.equal(true);
      expect(outcome.deltas).to.deep.equal(['one', ' two']);
      expect(target.requests).to.have.length(1);
    });

    it('an error object before any delta is retried like a failed request', async function () {
      const target = script(this, [{ kind: 'stream', deltas: ['x'], errorAfter: 0 }, { kind: 'stream', deltas: ['recovered'] }]);
      const outcome = await run(client(), ask('hi'));
      expect(outcome.text).to.equal('recovered');
      expect(target.requests).to.have.length(2);
    });

    it('the connection dropping after the first deltas: llm_stream_error, no retry', async function () {
      const target = script(this, [{ kind: 'stream', deltas: ['alpha', ' beta', ' gamma'], dropAfter: 2 }]);
      const outcome = await run(client(), ask('hi'));
      const error = expectLlmError(outcome, 'llm_stream_error');
      expect(error.partial).to.equal(true);
      expect(outcome.deltas).to.deep.equal(['alpha', ' beta']);
      expect(target.requests).to.have.length(1);
    });

    it('without an onDelta handler nothing was handed out, so a broken stream is retried from the start', async function () {
      const target = script(this, [{ kind: 'stream', deltas: ['par', 'tial', ' x'], dropAfter: 2 }, { kind: 'stream', deltas: ['whole', ' answer'] }]);
      expect(await client().reply(ask('hi'))).to.equal('whole answer');
      expect(target.requests).to.have.length(2);
    });

    it('a stream that ends cleanly but without [DONE]: llm_stream_error', async function () {
      script(this, [{ kind: 'stream', deltas: ['half', ' an answer'], omitDone: true }]);
      const outcome = await run(client({ maxRetries: 0 }), ask('hi'));
      expectLlmError(outcome, 'llm_stream_error');
      expect(outcome.deltas).to.deep.equal(['half', ' an answer']);
    });

    it("passes the delta handler's own error back untouched and does not retry", async function () {
      const target = script(this, [{ kind: 'stream', deltas: ['a', 'b'] }]);
      const mine = new Error('socket gone');
      const failure = await client()
        .reply(ask('hi'), () => {
          throw mine;
        })
        .then(
          () => expect.fail('expected a rejection'),
          (error: unknown) => error,
        );
      expect(failure).to.equal(mine);
      expect(target.requests).to.have.length(1);
    });
  });

  describe('timeouts and cancellation', function () {
    it('a server that never answers: llm_timeout after the first-byte timeout (each attempt)', async function () {
      const target = script(this, [{ kind: 'hang' }]);
      const started = Date.now();
      const error = expectLlmError(await run(client({ firstByteTimeoutMs: 150, maxRetries: 1 }), ask('hi')), 'llm_timeout');
      expect(error.retryable).to.equal(true);
      expect(target.requests).to.have.length(2);
      expect(Date.now() - started).to.be.within(250, 3000);
    });

    it('the overall timeout ends a stream that is too slow: llm_timeout, partial', async function () {
      script(this, [{ kind: 'stream', deltas: ['slow', ' and', ' slower', ' still'], delayMs: 150 }]);
      const outcome = await run(client({ totalTimeoutMs: 400 }), ask('hi'));
      const error = expectLlmError(outcome, 'llm_timeout');
      expect(error.partial).to.equal(true);
      expect(outcome.deltas.length).to.be.within(1, 3);
    });

    it("rejects with the caller's abort reason, promptly, without retrying", async function () {
      const target = script(this, [{ kind: 'hang' }]);
      const controller = new AbortController();
      const reason = new Error('user went away');
      const pending = run(client(), ask('hi', { signal: controller.signal }));
      while (target.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const aborted = Date.now();
      controller.abort(reason);
      const outcome = await pending;
      expect(outcome.error).to.equal(reason);
      expect(Date.now() - aborted).to.be.below(500);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(target.requests).to.have.length(1);
    });

    it('aborting mid-stream stops it with the reason', async function () {
      script(this, [{ kind: 'stream', deltas: ['1', '2', '3', '4', '5'], delayMs: 100 }]);
      const controller = new AbortController();
      const deltas: string[] = [];
      const failure = await client()
        .reply(ask('hi', { signal: controller.signal }), (delta) => {
          deltas.push(delta);
          if (deltas.length === 2) controller.abort();
        })
        .then(
          () => expect.fail('expected a rejection'),
          (error: unknown) => error,
        );
      expect(failure).to.be.instanceOf(Error).with.property('name', 'AbortError');
      expect(deltas).to.deep.equal(['1', '2']);
    });

    it('an already aborted signal sends nothing', async function () {
      const target = script(this, [{ kind: 'stream', deltas: ['x'] }]);
      const reason = new Error('too late');
      const outcome = await run(client(), ask('hi', { signal: AbortSignal.abort(reason) }));
      expect(outcome.error).to.equal(reason);
      expect(target.requests).to.have.length(0);
    });
  });

  describe('reply engine over the endpoint', function () {
    const config = (): { llm: { baseUrl: string; apiKey: string | undefined; model: string | undefined } } => ({
      llm: {
        baseUrl: REAL_URL ?? server?.url ?? '',
        apiKey: REAL_URL === undefined ? API_KEY : process.env.LLM_API_KEY,
        model: REAL_URL === undefined ? 'configured-model' : process.env.LLM_MODEL,
      },
    });

    it('rules first, then the LLM for a bot with llm settings, else the fallback', async function () {
      server?.setScript([{ kind: 'stream', deltas: ['From', ' the', ' model.'] }]);
      const engine = createReplyEngine(config(), { client: { retryBaseDelayMs: 10 } });
      const rules = [{ match: 'opening hours', reply: 'Nine to five.' }];
      expect(await engine.reply(ask('What are your OPENING HOURS?', { bot: bot({}, rules) }))).to.equal('Nine to five.');
      expect(await engine.reply(ask('Something else', { bot: bot(null, rules) }))).to.equal(FALLBACK_REPLY);
      if (server !== undefined) expect(server.requests).to.have.length(0);
      const deltas: string[] = [];
      const text = await engine.reply(ask('Say hi in three words.', { bot: bot({}, rules) }), (delta) => void deltas.push(delta));
      expectWholeReply({ deltas, text });
      if (server === undefined) return;
      expect(text).to.equal('From the model.');
      expect((server.requests[0]?.body as { model: string }).model).to.equal('configured-model');
    });
  });
});

describe('server-sent events parser', function () {
  const wire =
    ': comment\r\n' +
    'event: message\r\n' +
    'data: {"a":1}\r\n\r\n' +
    'data: first\n' +
    'data:second\n\n' +
    'id: 3\rdata: cr only\r\r' +
    'field-without-colon\n' +
    'data\n\n' +
    'event: error\ndata: {"error":{"message":"x"}}\n\n' +
    'data: [DONE]\n\n';
  const expected: SseEvent[] = [
    { event: 'message', data: '{"a":1}' },
    { event: 'message', data: 'first\nsecond' },
    { event: 'message', data: 'cr only' },
    { event: 'message', data: '' },
    { event: 'error', data: '{"error":{"message":"x"}}' },
    { event: 'message', data: '[DONE]' },
  ];

  it('reads fields, comments, multi-line data and every line ending', function () {
    const parser = new SseParser();
    expect([...parser.push(wire), ...parser.end()]).to.deep.equal(expected);
  });

  it('property: however the text is split, the same events come out', function () {
    fc.assert(
      fc.property(fc.array(fc.nat(wire.length), { maxLength: 30 }), (cuts) => {
        const points = [0, ...[...cuts].sort((a, b) => a - b), wire.length];
        const parser = new SseParser();
        const events: SseEvent[] = [];
        for (let index = 1; index < points.length; index += 1) events.push(...parser.push(wire.slice(points[index - 1], points[index])));
        events.push(...parser.end());
        expect(events).to.deep.equal(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('delivers a last event left without its blank line at the end of the stream', function () {
    const parser = new SseParser();
    expect(parser.push('data: [DONE]')).to.deep.equal([]);
    expect(parser.end()).to.deep.equal([{ event: 'message', data: '[DONE]' }]);
  });

  it('refuses a line longer than its limit instead of buffering without end', function () {
    const parser = new SseParser(1000);
    expect(() => parser.push(`data: ${'x'.repeat(2000)}`)).to.throw(/larger than allowed/);
  });
});
