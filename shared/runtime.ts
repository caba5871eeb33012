import { fileURLToPath } from 'node:url';

/**
 * The same code runs two ways: as TypeScript through tsx (`npm start`, `npx botserver`, the tests) and as JavaScript
 * compiled by `npm run build` into `dist/` (the container image). A module that starts a process or a thread of its
 * own code asks here which file to start and how.
 */

/**
 * Node options of the container image (its `ENV NODE_OPTIONS`, checked by a test against this value). Node 24 sizes
 * V8's young generation from the heap limit, up to 64 MB of semi-spaces per process; 8 MB semi-spaces keep a process's
 * resident memory near what Node 20 gave (the files worker's peak for a 1 GiB file: 176 MB → 143 MB) at no loss of
 * upload speed. `npm run bench -- files --compiled` runs the worker with them, as the image does.
 */
export const IMAGE_NODE_OPTIONS = '--max-semi-space-size=8';

/** True when the module whose `import.meta.url` this is was compiled to JavaScript. */
export function runsCompiled(moduleUrl: string): boolean {
  return moduleUrl.endsWith('.js');
}

/**
 * A sibling module of `moduleUrl` to run in a new process: `relative` names it without extension (`../cli`); the
 * node arguments load tsx first when the caller itself runs as TypeScript.
 */
export function ownModuleCommand(moduleUrl: string, relative: string): { path: string; nodeArgs: string[] } {
  const compiled = runsCompiled(moduleUrl);
  return {
    path: fileURLToPath(new URL(`${relative}${compiled ? '.js' : '.ts'}`, moduleUrl)),
    nodeArgs: compiled ? [] : ['--import', 'tsx'],
  };
}
