import { execFileSync } from 'node:child_process';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A self-signed certificate made by `openssl` for this test run. */
export interface TestCertificate {
  certPath: string;
  keyPath: string;
  /** The certificate's PEM, to use as a client's `ca`. */
  pem: string;
  /** SHA-256 fingerprint as Node prints it (`AB:CD:…`), compared with `getPeerCertificate().fingerprint256`. */
  fingerprint256: string;
}

/** A private temp dir (0700) for certificates; remove it with `removeCertDir`. */
export function makeCertDir(): string {
  return mkdtempSync(join(tmpdir(), 'botserver-certs-'));
}

export function removeCertDir(dir: string | undefined): void {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
}

/**
 * A fresh self-signed RSA-2048 certificate for 127.0.0.1 and localhost, valid one day, written to
 * `<dir>/<name>.crt` and `<dir>/<name>.key` (the key unencrypted, 0600 as openssl writes it).
 */
export function makeSelfSignedCertificate(dir: string, name = 'server'): TestCertificate {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-days', '1', '-keyout', keyPath, '-out', certPath],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const pem = readFileSync(certPath, 'utf8');
  return { certPath, keyPath, pem, fingerprint256: new X509Certificate(pem).fingerprint256 };
}

export interface HttpsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The server certificate's SHA-256 fingerprint seen on this (fresh) connection. */
  fingerprint256: string;
}

/** One HTTPS request on a fresh connection (no agent), trusting only `ca`. */
export function httpsRequest(
  url: string,
  ca: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    const request = https.request(url, { method: options.method ?? 'GET', headers: options.headers, ca, agent: false }, (response) => {
      const fingerprint256 = (response.socket as TLSSocket).getPeerCertificate().fingerprint256;
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body, fingerprint256 }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(options.body);
  });
}
