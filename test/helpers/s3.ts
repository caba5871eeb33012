import { randomBytes } from 'node:crypto';

/**
 * The S3-compatible server of the tests: OpenStack Swift with s3api, started by `bash scripts/services.sh --s3`
 * (`npm test` does it and sets BOTSERVER_TEST_S3_ENDPOINT). Access key `test:tester`, secret `testing`.
 */
export interface S3TestSettings {
  endpoint: string;
  /** A fresh bucket name, `botserver-test-<random>[-suffix]`; the bucket itself is created by `ensureReady()`. */
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The variables that make a child process (`loadConfig`) use this bucket. */
  env(): Record<string, string>;
}

function inCi(): boolean {
  return process.env.CI !== undefined && process.env.CI !== '';
}

const MISSING = 'BOTSERVER_TEST_S3_ENDPOINT is not set: run "bash scripts/services.sh --s3" and set it to http://127.0.0.1:9010 (npm test does both)';

/**
 * Settings for a fresh test bucket, or undefined when BOTSERVER_TEST_S3_ENDPOINT is unset on a developer machine.
 * In CI (`CI` set) an unset endpoint throws: there a missing S3 server is a broken setup, not a reason to skip.
 */
export function s3TestSettings(bucketSuffix?: string): S3TestSettings | undefined {
  const endpoint = process.env.BOTSERVER_TEST_S3_ENDPOINT;
  if (endpoint === undefined || endpoint === '') {
    if (inCi()) throw new Error(MISSING);
    return undefined;
  }
  const suffix = bucketSuffix === undefined ? '' : `-${bucketSuffix.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`.slice(0, 20);
  const settings = {
    endpoint,
    bucket: `botserver-test-${randomBytes(6).toString('hex')}${suffix}`.replace(/-+$/, ''),
    region: 'us-east-1',
    accessKeyId: 'test:tester',
    secretAccessKey: 'testing',
  };
  return {
    ...settings,
    env: () => ({
      S3_ENDPOINT: settings.endpoint,
      S3_BUCKET: settings.bucket,
      S3_REGION: settings.region,
      AWS_ACCESS_KEY_ID: settings.accessKeyId,
      AWS_SECRET_ACCESS_KEY: settings.secretAccessKey,
    }),
  };
}

/**
 * Call first in a suite's `before` hook: the settings, or (developer machine, no endpoint) the suite is skipped
 * with a clear message; in CI a missing endpoint fails the hook.
 */
export function requireS3(context: Mocha.Context, bucketSuffix?: string): S3TestSettings {
  const settings = s3TestSettings(bucketSuffix);
  if (settings !== undefined) return settings;
  console.warn(`      skipped: ${MISSING}`);
  context.skip();
}
