import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { z } from 'zod';
import { findUnsafeText } from '../../api/http/validate.js';
import { joinSchema, sendSchema } from '../../api/socket/handlers.js';
import { closeAllClients, connectClient, type AckResponse, type ChatClient } from '../helpers/chat.js';
import { hostileString, nearValidArb, sendRaw, startFuzzTarget, storageHostileString, tableChecksums, type Checksums, type FuzzTarget } from '../helpers/fuzz.js';

/**
 * Property-based fuzzing of the Socket.IO events (CONTRACT §4): random payloads for `conversation:join`,
 * `message:send` and unknown event names, from signed-in users, staff and guests. Every emit gets an ack that is
 * `{ok:true}` for a valid payload or `{ok:false,error}` with a client error code (never `internal_error`); an
 * invalid payload changes no row; the fifth strike disconnects the socket; the server stays up throughout.
 */

/** Names socket.io-client refuses to emit (its own events). */
const RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);
/** What counts as a strike on the server: a payload its schema refuses, an unknown event, a spent rate budget. */
const STRIKES = new Set(['invalid_request', 'unknown_event', 'rate_limited']);
const MAX_STRIKES = 5;
const ACK_TIMEOUT_MS = 5000;

const ackSchema = z.union([z.strictObject({ ok: z.literal(true), messageId: z.uuid().optional() }), z.strictObject({ ok: z.literal(false), error: z.string().min(1) })]);

type Caller = 'user' | 'admin' | 'guest';

/** A socket per caller, replaced once the server has disconnected it; strikes counted from the acks. */
class Sockets {
  private readonly open = new Map<Caller, { client: ChatClient; strikes: number }>();
  disconnectsSeen = 0;

  constructor(private readonly target: FuzzTarget) {}

  private token(caller: Caller): string {
    return caller === 'guest' ? this.target.guestToken : this.target[caller].token;
  }

  async emit(caller: Caller, event: string, payload: unknown): Promise<AckResponse> {
    let entry = this.open.get(caller);
    if (entry === undefined || !entry.client.socket.connected) {
      entry = { client: await connectClient(this.target.api.url, { token: this.token(caller) }), strikes: 0 };
      this.open.set(caller, entry);
    }
    const raw: unknown = await entry.client.emitAck(event, payload, ACK_TIMEOUT_MS);
    const ack = ackSchema.parse(raw);
    if (!ack.ok && STRIKES.has(ack.error)) entry.strikes += 1;
    if (entry.strikes >= MAX_STRIKES) {
      // The fifth strike ends the connection, from the server's side.
      expect(await entry.client.waitForDisconnect(ACK_TIMEOUT_MS)).to.equal('io server disconnect');
      this.disconnectsSeen += 1;
      entry.client.close();
      this.open.delete(caller);
    }
    return ack;
  }

  close(): void {
    for (const { client } of this.open.values()) client.close();
    this.open.clear();
  }
}

/** Values socket.io can carry: any JSON-ish value, binary, hostile strings. */
const anyPayload: fc.Arbitrary<unknown> = fc.oneof(
  fc.anything({ maxDepth: 3 }),
  fc.jsonValue({ maxDepth: 3 }),
  hostileString,
  fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
  fc.constantFrom(null, undefined, 0, '', [], {}, { conversationId: null }, { __proto__: { conversationId: 'x' } }),
);

describe('fuzz: Socket.IO events', function () {
  this.timeout(180_000);
  let target: FuzzTarget;
  let sockets: Sockets;
  let checksums: Checksums;
  const acks = new Map<string, number>();

  before(async function () {
    this.timeout(120_000);
    target = await startFuzzTarget();
    sockets = new Sockets(target);
    checksums = await tableChecksums(target.database.ownerDb);
  });

  after(async function () {
    this.timeout(60_000);
    const summary = [...acks.entries()].map(([code, count]) => `${code}×${count}`).join(' ');
    if (summary !== '') console.log(`      acks: ${summary}`);
    sockets?.close();
    closeAllClients();
    await target?.stop();
  });

  /** Emits, checks the ack, and holds a refused event to "no row changed". Returns the ack. */
  async function emitChecked(caller: Caller, event: string, payload: unknown, schema: z.ZodType | undefined): Promise<AckResponse> {
    const before = checksums;
    const ack = await sockets.emit(caller, event, payload);
    acks.set(ack.ok ? 'ok' : ack.error, (acks.get(ack.ok ? 'ok' : ack.error) ?? 0) + 1);
    checksums = await tableChecksums(target.database.ownerDb);
    const context = `${caller} ${event} ${JSON.stringify(payload)?.slice(0, 300)} -> ${JSON.stringify(ack)}`;
    if (!ack.ok) {
      expect(ack.error, context).to.not.equal('internal_error');
      expect(checksums, `a refused event changed rows: ${context}`).to.deep.equal(before);
    }
    // socket.io delivers what JSON (and binary) can carry: the schema sees the payload after that round trip.
    const delivered: unknown = payload === undefined || Buffer.isBuffer(payload) ? payload : JSON.parse(JSON.stringify(payload) ?? 'null');
    const valid = schema !== undefined && schema.safeParse(delivered).success && findUnsafeText(delivered) === undefined;
    if (schema === undefined) expect(ack, context).to.deep.equal({ ok: false, error: 'unknown_event' });
    else if (!valid) expect(ack, context).to.deep.equal({ ok: false, error: 'invalid_request' });
    else if (!ack.ok) expect(['not_found', 'rate_limited', 'message_too_large', 'unauthorized', 'handoff_required'], context).to.include(ack.error);
    return ack;
  }

  const callers = fc.oneof({ weight: 3, arbitrary: fc.constant<Caller>('user') }, { weight: 1, arbitrary: fc.constantFrom<Caller>('admin', 'guest') });

  function conversationIdArb(): fc.Arbitrary<unknown> {
    return fc.oneof(fc.constantFrom(target.conversationId, target.guestConversationId), fc.uuid(), hostileString, fc.anything({ maxDepth: 1 }));
  }

  it('conversation:join: any payload is acked ok or with a client error; invalid ones strike and change nothing', async () => {
    const payload = fc.oneof(
      { weight: 3, arbitrary: nearValidArb({ conversationId: target.conversationId, after: target.messageId }) },
      { weight: 2, arbitrary: fc.record({ conversationId: conversationIdArb(), after: fc.oneof(fc.uuid(), hostileString) }, { requiredKeys: [] }) },
      { weight: 2, arbitrary: anyPayload },
    );
    await fc.assert(
      fc.asyncProperty(callers, payload, async (caller, body) => {
        await emitChecked(caller, 'conversation:join', body, joinSchema);
      }),
      { numRuns: 120 },
    );
  });

  it('message:send: any payload is acked ok (a message) or with a client error; invalid ones strike and change nothing', async () => {
    const payload = fc.oneof(
      { weight: 3, arbitrary: fc.uuid().chain((id) => nearValidArb({ conversationId: target.conversationId, text: 'hello bot', clientMessageId: `fuzz-${id}` })) },
      { weight: 2, arbitrary: fc.record({ conversationId: conversationIdArb(), text: fc.oneof(storageHostileString, hostileString), clientMessageId: fc.oneof(storageHostileString, fc.uuid()) }, { requiredKeys: [] }) },
      { weight: 2, arbitrary: anyPayload },
    );
    await fc.assert(
      fc.asyncProperty(callers, payload, async (caller, body) => {
        await emitChecked(caller, 'message:send', body, sendSchema);
      }),
      { numRuns: 120 },
    );
  });

  it('storage-hostile text and client message ids in otherwise valid sends: refused or stored, never internal_error', async () => {
    for (const piece of ['\u0000', '\ud800', '\udfff', '\u0001', '\u202e', '\ufeff', "'; drop table messages;--", '😀']) {
      await emitChecked('user', 'message:send', { conversationId: target.conversationId, text: `text ${piece}`, clientMessageId: `fuzz-${randomUUID()}` }, sendSchema);
      await emitChecked('user', 'message:send', { conversationId: target.conversationId, text: 'text', clientMessageId: `fuzz-${piece}-${randomUUID()}` }, sendSchema);
    }
  });

  it('unknown event names: acked unknown_event, counted as strikes, change nothing', async () => {
    const eventName = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('message:new', 'conversation:leave', 'admin', '__proto__', 'constructor', 'message:send ', 'Message:send', 'conversation:join\u0000')).filter((name) => !RESERVED.has(name) && name !== 'conversation:join' && name !== 'message:send');
    await fc.assert(
      fc.asyncProperty(callers, eventName, anyPayload, async (caller, name, body) => {
        await emitChecked(caller, name, body, undefined);
      }),
      { numRuns: 60 },
    );
  });

  it('invalid floods end in disconnection without crashing the server; other clients keep working', async () => {
    const bystander = await connectClient(target.api.url, { token: target.user.token });
    const disconnectsBefore = sockets.disconnectsSeen;
    for (let flood = 0; flood < 3; flood += 1) {
      const flooder = await connectClient(target.api.url, { token: target.admin.token });
      // Fired without waiting: the server must answer or drop each, then cut the connection at the fifth strike.
      const pending = Array.from({ length: 50 }, (_, index) => flooder.emitAck(index % 2 === 0 ? 'message:send' : 'no:such:event', { junk: index }, 3000).catch(() => undefined));
      expect(await flooder.waitForDisconnect(5000)).to.equal('io server disconnect');
      await Promise.all(pending);
      flooder.close();
    }
    expect(sockets.disconnectsSeen).to.be.at.least(disconnectsBefore);
    expect(await bystander.join(target.conversationId)).to.deep.equal({ ok: true });
    const sent = await bystander.send(target.conversationId, 'still here', `fuzz-${randomUUID()}`);
    expect(sent.ok).to.equal(true);
    bystander.close();
    const health = await sendRaw(target.api.url, { method: 'GET', path: '/healthz', headers: {} });
    expect(health.status).to.equal(200);
    checksums = await tableChecksums(target.database.ownerDb);
  });

  it('saw strikes end connections during the random runs (the fifth-strike rule was exercised)', () => {
    expect(sockets.disconnectsSeen).to.be.above(3);
    expect(acks.get('invalid_request') ?? 0).to.be.above(20);
    expect(acks.get('ok') ?? 0).to.be.above(5);
  });
});
