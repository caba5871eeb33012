import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanupProcesses, compiledCli, freePort, REPO_ROOT, runCli, startCli, waitForHttpOk, type EnvOverrides } from '../helpers/process.js';

/**
 * `npm run build` and the compiled server it makes (what the container image runs): the CLI, migrations from an
 * empty database, the API with its web chat files and OpenAPI document, a worker's health listener, and a
 * knowledge extraction thread, all without tsx.
 */

const OUT_DIR = join(REPO_ROOT, '.test-run', `build-${randomBytes(4).toString('hex')}`);
const cli = compiledCli(OUT_DIR);

function runNpmBuild(): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', 'build', '--', '--out-dir', OUT_DIR], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

describe('npm run build: the compiled server', function () {
  this.timeout(120_000);
  let database: TestDatabase;
  let env: EnvOverrides;

  before(async function () {
    this.timeout(300_000);
    const [built, created] = await Promise.all([runNpmBuild(), createTestDatabase({ migrate: false })]);
    database = created;
    if (built.code !== 0) throw new Error(`npm run build failed:\n${built.output}`);
    env = { DATABASE_URL: database.url, BOTSERVER_QUEUE_PREFIX: uniqueQueuePrefix() };
  });

  after(async function () {
    this.timeout(60_000);
    await cleanupProcesses();
    await database?.destroy();
    rmSync(OUT_DIR, { recursive: true, force: true });
  });

  it('holds no TypeScript and no test code, and the runtime files beside the JavaScript', () => {
    const listing = readFileSync(join(OUT_DIR, 'package.json'), 'utf8');
    expect(JSON.parse(listing)).to.include({ type: 'module', name: 'botserver' });
    expect(() => readFileSync(join(OUT_DIR, 'scripts', 'cli.ts'))).to.throw();
    expect(() => readFileSync(join(OUT_DIR, 'test', 'helpers', 'process.js'))).to.throw();
    expect(() => readFileSync(join(OUT_DIR, 'scripts', 'bench', 'index.js'))).to.throw();
    expect(readFileSync(join(OUT_DIR, 'api', 'public', 'index.html'), 'utf8')).to.include('<html');
  });

  it('node scripts/cli.js --help lists the commands', async () => {
    const result = await runCli(['--help'], env, 30_000, cli);
    expect(result.code, result.stderr).to.equal(0);
    for (const command of ['api', 'worker', 'migrate', 'keygen', 'user', 'audit']) expect(result.stdout).to.match(new RegExp(`^  ${command}\\b`, 'm'));
  });

  it('migrate applies every migration to an empty database, then finds it up to date', async () => {
    const first = await runCli(['migrate'], env, 60_000, cli);
    expect(first.code, first.stderr).to.equal(0);
    expect(first.stdout).to.match(/^applied: 001_/);
    const second = await runCli(['migrate'], env, 60_000, cli);
    expect(second.stdout).to.equal('database is up to date\n');
  });

  it('api serves /healthz, /readyz, the web chat page and the OpenAPI document with the package version, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const api = startCli(['api'], { ...env, BOTSERVER_PORT: String(port) }, cli);
    const url = `http://127.0.0.1:${port}`;
    await waitForHttpOk(api, `${url}/readyz`, 60_000);
    expect(await (await fetch(`${url}/healthz`)).json()).to.deep.equal({ status: 'ok' });
    const page = await fetch(`${url}/`);
    expect(page.status).to.equal(200);
    expect(await page.text()).to.include('<html');
    const openapi = (await (await fetch(`${url}/api/openapi.json`)).json()) as { info: { version: string } };
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(openapi.info.version).to.equal(version);
    expect(await api.stop('SIGTERM', 20_000)).to.equal(0);
    expect(api.stdout + api.stderr).to.not.match(/unhandled|Cannot find module|ERR_/i);
  });

  it('a worker answers its health listener and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const worker = startCli(['worker', 'files'], { ...env, BOTSERVER_HEALTH_PORT: String(port) }, cli);
    await waitForHttpOk(worker, `http://127.0.0.1:${port}/readyz`, 60_000);
    expect(await worker.stop('SIGTERM', 20_000)).to.equal(0);
  });

  it('extracts a document in its worker thread without tsx (the thread starts at the compiled module)', async () => {
    const script = join(OUT_DIR, 'extract-check.mjs');
    writeFileSync(
      script,
      `import { extractInThread } from './shared/knowledge/extract-thread.js';
const sections = await extractInThread(Buffer.from('# Opening hours\\n\\nWe open at 9.'), 'text/markdown');
process.stdout.write(JSON.stringify(sections));\n`,
    );
    const childEnv = { ...process.env };
    delete childEnv.NODE_OPTIONS; // no tsx anywhere: only the compiled files
    const child = spawn(process.execPath, [script], { cwd: REPO_ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code, stderr).to.equal(0);
    expect(stdout).to.include('We open at 9.');
  });
});
