/**
 * Preloaded (`--expose-gc --import`) into both servers of the sockets benchmark: SIGUSR2 runs a full garbage
 * collection, then writes `process.memoryUsage()` as JSON to the file named by BENCH_MEMORY_FILE, so that memory
 * is read over live objects rather than garbage not yet collected.
 */
import { renameSync, writeFileSync } from 'node:fs';

const collect = (globalThis as { gc?: () => void }).gc;
const file = process.env.BENCH_MEMORY_FILE;
if (collect !== undefined && file !== undefined) {
  process.on('SIGUSR2', () => {
    collect();
    // Written whole under another name, then renamed: a reader never sees half of it.
    writeFileSync(`${file}.partial`, JSON.stringify(process.memoryUsage()));
    renameSync(`${file}.partial`, file);
  });
}
