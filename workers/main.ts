import type { Config, WorkerFamily } from '../shared/config/index.js';
import { UsageError } from '../shared/errors.js';
import { createKernel, type Kernel, type KernelOptions } from '../shared/kernel.js';
import { log } from '../shared/log/index.js';
import { startAuditWorker } from './audit.js';
import { startEmailWorker } from './email.js';
import { startFilesWorker } from './files.js';
import { startReplyWorker } from './reply.js';

/** The families built so far; the others of CONTRACT §1 arrive with their issues. */
const FAMILIES: Partial<Record<WorkerFamily, (kernel: Kernel) => void>> = {
  audit: startAuditWorker,
  email: (kernel) => startEmailWorker(kernel),
  files: startFilesWorker,
  reply: startReplyWorker,
};

export const availableFamilies = Object.keys(FAMILIES) as WorkerFamily[];

export interface RunningWorkers {
  families: WorkerFamily[];
  shutdown(): Promise<void>;
}

/** Starts one family, or every available one, each with its own kernel (and so its own database role). */
export function startWorkers(config: Config, which: WorkerFamily | 'all', options: KernelOptions = {}): RunningWorkers {
  const families = which === 'all' ? availableFamilies : [which];
  const kernels: Kernel[] = [];
  for (const family of families) {
    const start = FAMILIES[family];
    if (start === undefined) throw new UsageError('family', `worker family "${family}" is not available in this version (available: ${availableFamilies.join(', ')})`);
    const kernel = createKernel(config, family, options);
    start(kernel);
    kernels.push(kernel);
  }
  log.info('workers started', { families });
  let stopping: Promise<void> | undefined;
  return {
    families,
    shutdown: () =>
      (stopping ??= (async () => {
        log.info('workers shutting down');
        await Promise.allSettled(kernels.map((kernel) => kernel.close()));
        log.info('workers stopped');
      })()),
  };
}
