// A worker thread's entry: TypeScript through tsx's loader (as scripts/botserver.mjs does), then the thread's body.
import { register } from 'tsx/esm/api';

register();
await import('./extract-thread-main.ts');
