/**
 * `npm run build [-- --out-dir DIR]`: compiles the server to JavaScript (default `dist/`; what the container image
 * runs) and copies the files it reads at run time: the web chat's static files and a package.json (ES modules, the
 * version in the OpenAPI document). DIR must lie inside the repository, so that the compiled files find
 * node_modules. The development flow and the tests keep running the TypeScript through tsx.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));

function outDir(args: string[]): string {
  if (args.length === 0) return join(root, 'dist');
  const [flag, value] = args;
  const dir = value === undefined ? undefined : resolve(value);
  const inside = dir === undefined ? '' : relative(root, dir);
  if (flag !== '--out-dir' || args.length !== 2 || inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
    process.stderr.write('usage: npm run build [-- --out-dir DIR]   (DIR inside the repository)\n');
    process.exit(2);
  }
  return dir as string;
}

const dist = outDir(process.argv.slice(2));
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', dist], { stdio: 'inherit' });
if (compiled.status !== 0) process.exit(compiled.status ?? 1);

// The page's files as served; its type-checking set-up (tsconfig.json, types/) stays behind.
const publicDir = join(root, 'api', 'public');
const typeCheckOnly = new Set([join(publicDir, 'tsconfig.json'), join(publicDir, 'types')]);
cpSync(publicDir, join(dist, 'api', 'public'), { recursive: true, filter: (source) => !typeCheckOnly.has(source) });
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string; engines: unknown };
writeFileSync(join(dist, 'package.json'), `${JSON.stringify({ name: manifest.name, version: manifest.version, private: true, type: 'module', engines: manifest.engines }, null, 2)}\n`);
process.stdout.write(`built ${relative(root, dist)}/ (run: node ${relative(root, dist)}/scripts/cli.js <command>)\n`);
