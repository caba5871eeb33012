import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium (`apt-get install chromium`; `bash scripts/services.sh --browser` installs it). */
export const CHROMIUM_PATH = process.env.BOTSERVER_CHROMIUM ?? '/usr/bin/chromium';

/** Flags from RECIPES.md: headless, no sandbox (containers), and nothing that phones home. */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Call first in a suite's `before` hook. Without Chromium the suite is skipped with a clear message on a developer
 * machine, and fails in CI (`CI` set), where a missing browser is a broken setup rather than a reason to skip.
 */
export function requireChromium(context: Mocha.Context): void {
  if (existsSync(CHROMIUM_PATH)) return;
  const message = `Chromium not found at ${CHROMIUM_PATH}: install it with "apt-get install -y chromium" or run "bash scripts/services.sh --browser"`;
  if (process.env.CI !== undefined && process.env.CI !== '') throw new Error(message);
  console.warn(`      skipped: ${message}`);
  context.skip();
}

/**
 * Launches Debian Chromium through playwright-core. Every launch gets a fresh, empty profile: playwright-core makes
 * a new temp `--user-data-dir` (under the system temp dir) for each `launch()` and removes it on `close()` (it
 * refuses a `--user-data-dir` in `args`, which only `launchPersistentContext` takes).
 */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_FLAGS });
}
