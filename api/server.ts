import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Kernel } from '../shared/kernel.js';
import { log } from '../shared/log/index.js';
import { createApp } from './app.js';
import { answerClientError } from './http/clientError.js';
import { attachSocketServer } from './socket/server.js';

export interface ApiServer {
  url: string;
  server: http.Server | https.Server;
  /** Stops accepting, lets open requests finish (up to the grace period), then closes queues and zeroes keys. */
  shutdown(): Promise<void>;
}

const SHUTDOWN_GRACE_MS = 10_000;

/** Forward-secret AEAD suites only, for TLS 1.2 clients (TLS 1.3 suites are all modern). */
const TLS12_CIPHERS = ['ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305', 'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256'].join(':');

function tlsOptions(kernel: Kernel): https.ServerOptions | undefined {
  const tls = kernel.config.tls;
  if (tls === undefined) return undefined;
  return { cert: readFileSync(tls.certPath), key: readFileSync(tls.keyPath), minVersion: tls.minVersion, ciphers: TLS12_CIPHERS, honorCipherOrder: true };
}

/** SIGHUP re-reads the certificate and key; open connections keep theirs, new ones get the new pair. */
function reloadCertificatesOnHangup(kernel: Kernel, server: https.Server): () => void {
  const reload = (): void => {
    const options = tlsOptions(kernel);
    if (options === undefined) return;
    try {
      server.setSecureContext(options);
      log.info('TLS certificate reloaded');
    } catch (error) {
      log.error('TLS certificate reload failed; keeping the previous one', { error: (error as Error).message });
    }
  };
  process.on('SIGHUP', reload);
  return () => process.off('SIGHUP', reload);
}

export async function startApiServer(kernel: Kernel): Promise<ApiServer> {
  const app = await createApp(kernel);
  const tls = tlsOptions(kernel);
  const server = tls === undefined ? http.createServer(app.express) : https.createServer(tls, app.express);
  const sockets = attachSocketServer(server, app.context);
  const stopReloading = server instanceof https.Server ? reloadCertificatesOnHangup(kernel, server) : () => undefined;
  server.on('clientError', answerClientError);
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(kernel.config.port, kernel.config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${tls === undefined ? 'http' : 'https'}://${host}:${address.port}`;
  log.info('api listening', { url });

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> =>
    (stopping ??= (async () => {
      log.info('api shutting down');
      stopReloading();
      const grace = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      // Closing Socket.IO disconnects every socket and closes the HTTP server, which lets open requests finish.
      const closed = sockets.close();
      server.closeIdleConnections();
      await closed;
      clearTimeout(grace);
      await app.close();
      await kernel.close();
      log.info('api stopped');
    })());

  return { url, server, shutdown };
}
