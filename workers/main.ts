import type { Config, WorkerFamily } from '../shared/config/index.js';
import { UsageError } from '../shared/errors.js';
import { createKernel, type Kernel, type KernelOptions } from '../shared/kernel.js';
import { log } from '../shared/log/index.js';
import { startHealthListener, type HealthListener } from './health.js';

type StartFamily = (kernel: Kernel) => void;

/**
 * The families built so far; the others of CONTRACT §1 arrive with their issues. Each is loaded only when started,
 * so a one-family process holds only its own dependencies (the files worker no IMAP, SMTP or LLM code).
 */
const FAMILIES: Partial<Record<WorkerFamily, () => Promise<StartFamily>>> = {
  audit: async () => (await import('./audit.js')).startAuditWorker,
  email: async () => {
    const { startEmailWorker } = await import('./email/index.js');
    return (kernel) => startEmailWorker(kernel);
  },
  embed: async () => (await import('./embed.js')).startEmbedWorker,
  files: async () => (await import('./files.js')).startFilesWorker,
  reply: async () => (await import('./reply.js')).startReplyWorker,
};

export const availableFamilies = Object.keys(FAMILIES) as WorkerFamily[];

export interface RunningWorkers {
  families: WorkerFamily[];
  /** The `/healthz` + `/readyz` listener's port (BOTSERVER_HEALTH_PORT), when there is one. */
  healthPort: number | undefined;
  /** Takes no new job, lets every active job finish (BullMQ's graceful close), then closes connections and zeroes keys. */
  shutdown(): Promise<void>;
}

/** Starts one family, or every available one, each with its own kernel (and so its own database role). */
export async function startWorkers(config: Config, which: WorkerFamily | 'all', options: KernelOptions = {}): Promise<RunningWorkers> {
  // `all` leaves out the embed family unless the vectordb feature is on (it needs Qdrant).
  const families = which === 'all' ? availableFamilies.filter((family) => family !== 'embed' || config.features.has('vectordb')) : [which];
  if (families.includes('embed') && !config.features.has('vectordb')) throw new UsageError('family', 'the embed worker needs the vectordb feature (BOTSERVER_FEATURES=vectordb and QDRANT_URL)');
  const starters: StartFamily[] = [];
  for (const family of families) {
    const load = FAMILIES[family];
    if (load === undefined) throw new UsageError('family', `worker family "${family}" is not available in this version (available: ${availableFamilies.join(', ')})`);
    starters.push(await load());
  }
  const kernels: Kernel[] = [];
  families.forEach((family, index) => {
    const kernel = createKernel(config, family, options);
    starters[index]?.(kernel);
    kernels.push(kernel);
  });
  const firstKernel = kernels[0];
  let health: HealthListener | undefined;
  if (config.healthPort !== undefined && firstKernel !== undefined) {
    try {
      health = await startHealthListener(config, config.healthPort, firstKernel.db);
    } catch (error) {
      await Promise.allSettled(kernels.map((kernel) => kernel.close()));
      throw error;
    }
  }
  log.info('workers started', { families });
  let stopping: Promise<void> | undefined;
  return {
    families,
    healthPort: health?.port,
    shutdown: () =>
      (stopping ??= (async () => {
        log.info('workers shutting down');
        health?.markStopping();
        await Promise.allSettled(kernels.map((kernel) => kernel.close()));
        await health?.close();
        log.info('workers stopped');
      })()),
  };
}
