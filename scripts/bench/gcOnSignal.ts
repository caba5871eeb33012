/**
 * Preloaded (`--expose-gc --import`) into both servers of the sockets benchmark: SIGUSR2 runs a full garbage
 * collection, so that RSS is read over live memory rather than garbage not yet collected.
 */
const collect = (globalThis as { gc?: () => void }).gc;
if (collect !== undefined) process.on('SIGUSR2', () => collect());
