import type { io as socketIo } from 'socket.io-client';

declare global {
  /**
   * socket.io-client's browser bundle (`/assets/socket.io.min.js`, a classic `defer` script that runs before the
   * page's modules). Undefined when it failed to load.
   */
  var io: typeof socketIo | undefined;
}

export {};
