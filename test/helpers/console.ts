import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';

export { freePort } from './process.js';

/** Where the browser tests leave screenshots of the console's screens (a CI artifact). */
export const SCREENSHOT_DIR = fileURLToPath(new URL('../../.test-run/screenshots/', import.meta.url));

/** Saves a full-page screenshot as `.test-run/screenshots/<name>.png`. */
export async function saveScreenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}


export async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface BrowserPage {
  context: BrowserContext;
  page: Page;
  /** CSP violations and uncaught page errors seen so far: every test ends expecting none. */
  problems: string[];
  /** Every console line of the page (CSP reports of a refused frame appear here). */
  consoleLines: string[];
}

/** A fresh context (no cookies) and page, recording CSP violations and page errors. */
export async function openBrowserPage(browser: Browser, contexts: BrowserContext[], options: BrowserContextOptions = {}): Promise<BrowserPage> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 860 }, ...options });
  contexts.push(context);
  const page = await context.newPage();
  const problems: string[] = [];
  const consoleLines: string[] = [];
  page.on('console', (message) => {
    consoleLines.push(message.text());
    if (message.text().includes('Content Security Policy')) problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  return { context, page, problems, consoleLines };
}

/** Signs in through the page's form (keyboard only) and waits for the chat's bot list. */
export async function signIn(page: Page, url: string, account: { email: string; password: string }): Promise<void> {
  await page.goto(url);
  await page.locator('#login-email').fill(account.email);
  await page.locator('#login-password').fill(account.password);
  await page.locator('#login-password').press('Enter');
  await page.locator('#view-bots').waitFor({ state: 'visible' });
}

/** A tiny HTTP server on 127.0.0.1 that answers every request with one HTML page (a site embedding the widget). */
export async function startHostPage(html: string, port = 0): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(html);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  return {
    url: `http://127.0.0.1:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
