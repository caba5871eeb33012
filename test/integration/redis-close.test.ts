/**
 * Closing a Redis connection at shutdown (`closeGracefully`, used for the Socket.IO adapter's pub/sub pair): a
 * command sent without waiting for it (the adapter's UNSUBSCRIBEs on close) completes instead of failing unhandled
 * with "Connection is closed", also when the server answers slowly; a server that is gone does not hold shutdown.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { closeGracefully } from '../../shared/redis.js';
import { startPrivateRedis, type PrivateService } from '../helpers/private-services.js';

describe('redis: closing a connection at shutdown', function () {
  this.timeout(30_000);
  let redis: PrivateService;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };

  before(async () => {
    redis = await startPrivateRedis();
    process.on('unhandledRejection', onUnhandled);
  });
  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    await redis?.destroy();
  });

  /** The connection has ended for good (ioredis sets 'end' once the socket's close event came). */
  async function ended(client: Redis): Promise<boolean> {
    for (let wait = 0; wait < 40 && client.status !== 'end'; wait += 1) await new Promise((resolve) => setTimeout(resolve, 25));
    return client.status === 'end';
  }

  async function subscriberWithUnansweredUnsubscribes(admin: Redis): Promise<Redis> {
    const sub = new Redis(redis.url, { maxRetriesPerRequest: null });
    sub.on('error', () => undefined);
    await sub.psubscribe('socket.io#/#*');
    await sub.subscribe('socket.io-request#/#', 'socket.io-response#/#');
    // The server holds every reply for a moment: the UNSUBSCRIBEs below are still unanswered when the close begins.
    await admin.call('CLIENT', 'PAUSE', '150', 'ALL');
    // As the adapter does on close: sent, not awaited, no catch.
    void sub.punsubscribe('socket.io#/#*');
    void sub.unsubscribe('socket.io-request#/#', 'socket.io-response#/#');
    return sub;
  }

  it('lets unanswered commands complete: no unhandled "Connection is closed" rejection', async () => {
    const admin = new Redis(redis.url);
    try {
      for (let round = 0; round < 3; round += 1) {
        const sub = await subscriberWithUnansweredUnsubscribes(admin);
        await closeGracefully(sub);
        expect(await ended(sub)).to.equal(true);
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(unhandled.map(String)).to.deep.equal([]);
    } finally {
      admin.disconnect();
    }
  });

  it('shows why it is needed: cutting the socket at once leaves those commands rejected and unhandled', async () => {
    const admin = new Redis(redis.url);
    try {
      const sub = await subscriberWithUnansweredUnsubscribes(admin);
      sub.disconnect();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(unhandled.map(String)).to.include('Error: Connection is closed.');
      unhandled.length = 0;
    } finally {
      admin.disconnect();
    }
  });

  it('does not hold shutdown when the server is gone: the socket is cut after the grace time', async () => {
    const client = new Redis(redis.url, { maxRetriesPerRequest: null });
    client.on('error', () => undefined);
    await client.ping();
    await redis.kill();
    try {
      const started = Date.now();
      await closeGracefully(client, 500);
      expect(Date.now() - started).to.be.below(2_000);
    } finally {
      await redis.start();
    }
    // Closed for good: it does not come back when the server does.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(client.status).not.to.equal('ready');
  });
});
