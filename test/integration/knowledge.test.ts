import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { knowledgeListSchema, knowledgeSearchSchema } from '../../api/openapi/schemas.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { connectClient, createConversation, restJson, restOk, signedInUser, signOutAll, type SignedInUser } from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { json, uploadFile, waitForStored } from '../helpers/files.js';
import { waitFor, REPO_ROOT } from '../helpers/process.js';
import { startLlmServer, type LlmServer } from '../helpers/llm-server.js';
import { qdrantForTests, type QdrantForTests } from '../helpers/qdrant-server.js';
import { corruptPdf, pricingPdf } from '../fixtures/knowledge/make-pdf.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'knowledge');

interface DocumentInfo {
  id: string;
  status: string;
  reason: string | null;
  chunks: number;
}

interface SearchResult {
  documentId: string;
  title: string;
  position: string;
  text: string;
}

describe('knowledge: ingestion through the embed worker, hybrid search, answers with sources', function () {
  this.timeout(120_000);
  let database: TestDatabase;
  let qdrant: QdrantForTests;
  let llm: LlmServer;
  let api: TestApi;
  let workers: RunningWorkers[] = [];
  let admin: SignedInUser;
  let tenantB: SignedInUser;

  before(async () => {
    qdrant = await qdrantForTests();
    llm = await startLlmServer([{ kind: 'stream', deltas: ['The Team plan costs', ' 49 EUR [1].'] }]);
    database = await createTestDatabase();
    const prefix = uniqueQueuePrefix();
    const config = apiTestConfig(database.url, {
      BOTSERVER_FEATURES: 'vectordb',
      QDRANT_URL: qdrant.url,
      LLM_BASE_URL: llm.url,
      ...(qdrant.apiKey === undefined ? {} : { QDRANT_API_KEY: qdrant.apiKey }),
    });
    api = await startTestApi(config, prefix);
    workers = [await startWorkers(config, 'reply', { queuePrefix: prefix }), await startWorkers(config, 'files', { queuePrefix: prefix }), await startWorkers(config, 'embed', { queuePrefix: prefix })];
    admin = await signedInUser(api, 'admin', `knowledge-a-${randomBytes(3).toString('hex')}`);
    tenantB = await signedInUser(api, 'admin', `knowledge-b-${randomBytes(3).toString('hex')}`);
  });
  after(async () => {
    await signOutAll();
    for (const running of workers) await running.shutdown();
    await api?.stop();
    await database?.destroy();
    await qdrant?.stop();
    await llm?.stop();
  });

  async function storedFile(token: string, name: string, content: Buffer): Promise<string> {
    const upload = await uploadFile(api.url, token, name, content);
    expect(upload.status, upload.body.toString()).to.equal(202);
    const id = String(json(upload).id);
    expect((await waitForStored(api.url, token, id)).status).to.equal('stored');
    return id;
  }

  async function addDocument(token: string, botId: string, body: Record<string, unknown>): Promise<string> {
    const created = await restOk('POST', `${api.url}/api/bots/${botId}/knowledge`, 202, { token, body });
    return String(created.id);
  }

  async function waitForDocument(token: string, botId: string, documentId: string): Promise<DocumentInfo> {
    return waitFor(async () => {
      const listed = await restOk('GET', `${api.url}/api/bots/${botId}/knowledge`, 200, { token });
      const document = (listed.documents as DocumentInfo[]).find((candidate) => candidate.id === documentId);
      return document === undefined || document.status === 'pending' ? undefined : document;
    }, 60_000, 100);
  }

  async function search(token: string, botId: string, q: string): Promise<SearchResult[]> {
    const answer = await restOk('GET', `${api.url}/api/bots/${botId}/knowledge/search?q=${encodeURIComponent(q)}`, 200, { token });
    return answer.results as SearchResult[];
  }

  it('ingests a PDF with a table, an HTML page and a Markdown file; a rule bot answers from the table row with its source', async () => {
    const botId = String((await restOk('POST', `${api.url}/api/bots`, 201, { token: admin.token, body: { name: 'Help desk', rules: [{ match: 'hello', reply: 'Hi!' }] } })).id);
    const pdf = await addDocument(admin.token, botId, { title: 'Price list', fileId: await storedFile(admin.token, 'pricing.pdf', await pricingPdf()) });
    const html = await addDocument(admin.token, botId, { title: 'FAQ', fileId: await storedFile(admin.token, 'faq.html', readFileSync(join(FIXTURES, 'faq.html'))) });
    const markdown = await addDocument(admin.token, botId, { title: 'Handbook', fileId: await storedFile(admin.token, 'handbook.md', readFileSync(join(FIXTURES, 'handbook.md'))) });
    for (const id of [pdf, html, markdown]) {
      const document = await waitForDocument(admin.token, botId, id);
      expect(document.status, document.reason ?? '').to.equal('indexed');
      expect(document.chunks).to.be.greaterThan(0);
    }

    const documents = await restOk('GET', `${api.url}/api/bots/${botId}/knowledge`, 200, { token: admin.token });
    expect(knowledgeListSchema.safeParse(documents).success, 'the list matches its documented schema').to.equal(true);
    const searched = await restOk('GET', `${api.url}/api/bots/${botId}/knowledge/search?q=plan`, 200, { token: admin.token });
    expect(knowledgeSearchSchema.safeParse(searched).success, 'the search matches its documented schema').to.equal(true);
    const hits = await search(admin.token, botId, 'Team plan price per month');
    expect(hits[0]?.documentId).to.equal(pdf);
    expect(hits[0]?.text).to.match(/Team\s*\|\s*49 EUR\s*\|\s*10/);
    expect(hits[0]?.position).to.match(/^page \d+$/);

    const conversationId = await createConversation(api.url, admin, botId);
    const chat = await connectClient(api.url, { token: admin.token });
    expect((await chat.join(conversationId)).ok).to.equal(true);
    expect((await chat.send(conversationId, 'How much does the Team plan cost per month?', 'k-1')).ok).to.equal(true);
    const answer = await chat.waitForMessage((message) => message.role === 'bot' && message.text.includes('49 EUR'), 20_000);
    expect(answer.sources?.[0]).to.deep.include({ documentId: pdf, title: 'Price list' });
    expect((await chat.send(conversationId, 'hello there', 'k-2')).ok).to.equal(true);
    const ruled = await chat.waitForMessage((message) => message.role === 'bot' && message.text === 'Hi!', 20_000);
    expect(ruled.sources, 'a matching rule answers without sources').to.equal(undefined);
    chat.close();

    const listed = await restOk('GET', `${api.url}/api/conversations/${conversationId}/messages`, 200, { token: admin.token });
    const stored = (listed.messages as Array<{ text: string; sources?: unknown[] }>).find((message) => message.text.includes('49 EUR'));
    expect(stored?.sources).to.have.length(1);
  });

  it('gives an LLM bot the passages as numbered sources in its prompt, and records them as the answer\'s sources', async () => {
    const botId = String((await restOk('POST', `${api.url}/api/bots`, 201, { token: admin.token, body: { name: 'LLM desk', llm: { systemPrompt: 'Be brief.' } } })).id);
    const document = await addDocument(admin.token, botId, { title: 'Plans', text: '# Prices\n\nThe Team plan costs 49 EUR per month for ten users.' });
    expect((await waitForDocument(admin.token, botId, document)).status).to.equal('indexed');
    llm.setScript([{ kind: 'stream', deltas: ['The Team plan costs', ' 49 EUR [1].'] }]);
    const conversationId = await createConversation(api.url, admin, botId);
    const chat = await connectClient(api.url, { token: admin.token });
    expect((await chat.join(conversationId)).ok).to.equal(true);
    expect((await chat.send(conversationId, 'What does the Team plan cost?', 'llm-1')).ok).to.equal(true);
    const answer = await chat.waitForMessage((message) => message.role === 'bot' && message.text.includes('[1]'), 20_000);
    chat.close();
    expect(answer.sources?.[0]).to.deep.equal({ documentId: document, title: 'Plans', position: 'section Prices' });
    const body = llm.requests.at(-1)?.body as { messages: Array<{ role: string; content: string }> };
    const system = body.messages.find((message) => message.role === 'system')?.content ?? '';
    expect(system).to.include('Be brief.');
    expect(system).to.include('[1] Plans (section Prices):');
    expect(system).to.include('49 EUR per month');
  });

  it('never returns another tenant\'s or another bot\'s passages, whatever the query', async () => {
    const words = ['invoice', 'refund', 'password', 'delivery', 'warranty', 'pricing', 'opening', 'hours', 'contract', 'support'];
    const botA1 = String((await restOk('POST', `${api.url}/api/bots`, 201, { token: admin.token, body: { name: 'A1' } })).id);
    const botA2 = String((await restOk('POST', `${api.url}/api/bots`, 201, { token: admin.token, body: { name: 'A2' } })).id);
    const botB = String((await restOk('POST', `${api.url}/api/bots`, 201, { token: tenantB.token, body: { name: 'B' } })).id);
    const text = `# Policies\n\n${words.map((word) => `Our ${word} policy is explained here in detail.`).join('\n\n')}`;
    const own = await addDocument(admin.token, botA1, { title: 'A1 policies', text });
    const sibling = await addDocument(admin.token, botA2, { title: 'A2 policies', text });
    const foreign = await addDocument(tenantB.token, botB, { title: 'B policies', text });
    for (const [token, bot, id] of [[admin.token, botA1, own], [admin.token, botA2, sibling], [tenantB.token, botB, foreign]] as const) {
      expect((await waitForDocument(token, bot, id)).status).to.equal('indexed');
    }
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom(...words, 'policy', 'explained', 'zzz'), { minLength: 1, maxLength: 5 }), async (terms) => {
        const hits = await search(admin.token, botA1, terms.join(' '));
        expect(hits.every((hit) => hit.documentId === own)).to.equal(true);
        const foreignHits = await search(tenantB.token, botB, terms.join(' '));
        expect(foreignHits.every((hit) => hit.documentId === foreign)).to.equal(true);
      }),
      { numRuns: 15 },
    );
    // Another tenant's bot id is simply not found.
    expect((await restJson('GET', `${api.url}/api/bots/${botB}/knowledge/search?q=policy`, { token: admin.token })).status).to.equal(404);
  });

  it('deleting a document removes its points; erasing a user removes the points of documents they owned', async () => {
    const botId = String((await restOk('POST', `${api.url}/api/bots`, 201, { token: admin.token, body: { name: 'Erasable' } })).id);
    const kept = await addDocument(admin.token, botId, { title: 'Kept', text: 'The parking garage opens at seven.' });
    const removed = await addDocument(admin.token, botId, { title: 'Removed', text: 'The cafeteria serves soup on Tuesdays.' });
    const operator = await signedInUser(api, 'operator', admin.tenant);
    const owned = await addDocument(operator.token, botId, { title: 'Owned', text: 'The bicycle shed is behind building nine.' });
    for (const id of [kept, removed, owned]) expect((await waitForDocument(admin.token, botId, id)).status).to.equal('indexed');
    expect((await search(admin.token, botId, 'cafeteria soup')).some((hit) => hit.documentId === removed)).to.equal(true);

    expect((await restJson('DELETE', `${api.url}/api/bots/${botId}/knowledge/${removed}`, { token: admin.token })).status).to.equal(204);
    expect((await search(admin.token, botId, 'cafeteria soup Tuesdays')).some((hit) => hit.documentId === removed)).to.equal(false);
    if (qdrant.standIn !== undefined) {
      const points = qdrant.standIn.collections().flatMap((collection) => collection.points);
      expect(points.some((point) => (point.payload as { document_id?: string } | null)?.document_id === removed)).to.equal(false);
    }

    expect((await search(admin.token, botId, 'bicycle shed building nine')).some((hit) => hit.documentId === owned)).to.equal(true);
    expect((await restJson('DELETE', `${api.url}/api/me`, { token: operator.token })).status).to.equal(202);
    expect((await search(admin.token, botId, 'bicycle shed building nine')).some((hit) => hit.documentId === owned)).to.equal(false);
    expect((await search(admin.token, botId, 'parking garage')).some((hit) => hit.documentId === kept)).to.equal(true);
  });

  it('a corrupt PDF ends failed with a reason, and the next document is still indexed', async () => {
    const botId = String((await restOk('POST', `${api.url}/api/bots`, 201, { token: admin.token, body: { name: 'Broken' } })).id);
    const broken = await addDocument(admin.token, botId, { title: 'Broken', fileId: await storedFile(admin.token, 'broken.pdf', corruptPdf()) });
    const next = await addDocument(admin.token, botId, { title: 'Fine', text: 'Deliveries arrive before noon.' });
    const failed = await waitForDocument(admin.token, botId, broken);
    expect(failed.status).to.equal('failed');
    expect(failed.reason).to.match(/unreadable_document|unsupported/);
    expect((await waitForDocument(admin.token, botId, next)).status).to.equal('indexed');
  });

  it('refuses a file that cannot be indexed (422) and a request with both text and file (400)', async () => {
    const botId = String((await restOk('POST', `${api.url}/api/bots`, 201, { token: admin.token, body: { name: 'Picky' } })).id);
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
    const image = await storedFile(admin.token, 'pixel.png', png);
    const refused = await restJson('POST', `${api.url}/api/bots/${botId}/knowledge`, { token: admin.token, body: { title: 'Pixel', fileId: image } });
    expect(refused.status).to.equal(422);
    expect(refused.body).to.include({ error: 'unsupported_document', field: 'fileId' });
    const both = await restJson('POST', `${api.url}/api/bots/${botId}/knowledge`, { token: admin.token, body: { title: 'X', text: 'x', fileId: image } });
    expect(both.status).to.equal(400);
    const user = await signedInUser(api, 'user', admin.tenant);
    expect((await restJson('POST', `${api.url}/api/bots/${botId}/knowledge`, { token: user.token, body: { title: 'X', text: 'x' } })).status).to.equal(403);
    expect((await restJson('GET', `${api.url}/api/bots/${botId}/knowledge/search?q=x`, { token: user.token })).status, 'not in a conversation with the bot').to.equal(404);
  });
});

describe('knowledge without the vectordb feature', () => {
  let database: TestDatabase;
  let api: TestApi;
  before(async () => {
    database = await createTestDatabase();
    api = await startTestApi(apiTestConfig(database.url));
  });
  after(async () => {
    await signOutAll();
    await api?.stop();
    await database?.destroy();
  });

  it('answers 409 feature_disabled', async () => {
    const admin = await signedInUser(api, 'admin');
    const botId = String((await restOk('POST', `${api.url}/api/bots`, 201, { token: admin.token, body: { name: 'No knowledge' } })).id);
    const added = await restJson('POST', `${api.url}/api/bots/${botId}/knowledge`, { token: admin.token, body: { title: 'T', text: 'text' } });
    expect(added.status).to.equal(409);
    expect(added.body).to.include({ error: 'feature_disabled' });
    expect((await restJson('GET', `${api.url}/api/bots/${botId}/knowledge`, { token: admin.token })).status).to.equal(409);
  });
});
