import { log } from '../shared/log/index.js';

/** Keeps the process up until SIGTERM/SIGINT, then runs the shutdown once and exits 0 (1 if shutdown failed). */
export function stopOnSignals(shutdown: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info('signal received', { signal });
    shutdown().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error('shutdown failed', { error: error instanceof Error ? error.message : String(error) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('unhandledRejection', (reason) => {
    log.error('unhandled rejection', { error: reason instanceof Error ? { message: reason.message, stack: reason.stack } : String(reason) });
    process.exitCode = 1;
  });
}
