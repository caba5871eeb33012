import { expect } from 'chai';
import { verifyAuditChain } from '../../shared/audit/index.js';
import { familyRole } from '../../shared/db/index.js';
import { createKernel, type Kernel } from '../../shared/kernel.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/process.js';

/**
 * A process's audit events under load go through the queue in batches (group commit): fewer jobs than events,
 * yet every event reaches the chain exactly once and the chain verifies. A lone event still goes as a job of its own.
 */
describe('audit: group commit of a busy process', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let kernel: Kernel;
  let workers: RunningWorkers | undefined;
  let prefix: string;

  before(async () => {
    database = await createTestDatabase();
    prefix = uniqueQueuePrefix();
    kernel = createKernel(apiTestConfig(database.url), 'api', { queuePrefix: prefix });
  });
  after(async () => {
    await workers?.shutdown();
    await kernel.queues.queue('audit').obliterate({ force: true });
    await kernel.close();
    await database.destroy();
  });

  it('records 500 concurrent events in fewer jobs, and the audit worker writes each once into one valid chain', async () => {
    const total = 500;
    await Promise.all(Array.from({ length: total }, (_, n) => kernel.audit.record({ type: 'data.write', outcome: 'success', actor: `user-${n % 9}`, target: `message:${n}`, details: { n } })));
    const queue = kernel.queues.queue('audit');
    const jobs = await queue.getJobs(['waiting', 'wait', 'prioritized']);
    expect(jobs.length, 'one job per batch').to.be.below(total).and.above(0);
    const carried = jobs.map((job) => kernel.queues.open('audit', job)).reduce((sum, data) => sum + ('events' in data ? data.events.length : 1), 0);
    expect(carried).to.equal(total);

    workers = await startWorkers(kernel.config, 'audit', { queuePrefix: prefix });
    const owner = database.ownerDb;
    await waitFor(async () => Number((await owner('audit_events').where({ type: 'data.write' }).count<Array<{ n: string }>>('* as n'))[0]?.n) === total || undefined, 30_000, 100);
    const targets = await owner('audit_events').pluck<string[]>('target');
    expect(new Set(targets).size).to.equal(total);
    expect(await verifyAuditChain(database.dbAs(familyRole.audit), kernel.keys.auditKeys)).to.deep.include({ ok: true, checked: total });
  });

  it('sends a lone event at once as a job of its own, named by its type, with the event id as job id', async () => {
    await workers?.shutdown();
    workers = undefined;
    await kernel.audit.record({ type: 'auth.logout', outcome: 'success', actor: 'user-lone' });
    const [job] = await kernel.queues.queue('audit').getJobs(['waiting', 'wait', 'prioritized']);
    expect(job?.name).to.equal('auth.logout');
    expect(kernel.queues.open('audit', job!)).to.include({ eventId: job?.id, actor: 'user-lone' });
  });
});
