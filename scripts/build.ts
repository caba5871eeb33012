/**
 * `npm run build`: compiles the server to JavaScript in dist/ (what the container image runs) and copies the files
 * it reads at run time: the web chat's static files and a package.json (ES modules, the version in the OpenAPI
 * document). The development flow and the tests keep running the TypeScript through tsx.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const dist = `${root}dist/`;

rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', `${root}tsconfig.build.json`], { stdio: 'inherit' });
if (compiled.status !== 0) process.exit(compiled.status ?? 1);

cpSync(`${root}api/public`, `${dist}api/public`, { recursive: true });
const manifest = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { name: string; version: string; engines: unknown };
writeFileSync(`${dist}package.json`, `${JSON.stringify({ name: manifest.name, version: manifest.version, private: true, type: 'module', engines: manifest.engines }, null, 2)}\n`);
process.stdout.write('built dist/ (run: node dist/scripts/cli.js <command>)\n');
