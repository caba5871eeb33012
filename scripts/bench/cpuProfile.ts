import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The parts of a V8 `.cpuprofile` (node --cpu-prof) that a summary needs. */
interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Sampled ms inside the window. */
  totalMs: number;
  /** Self time by package (`node_modules/<name>`), Node internals, or our own folder (`api`, `shared`, ...). */
  byPackage: Array<[string, number]>;
  /** Self time by function, with where it is. */
  byFunction: Array<[string, number]>;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function packageOf(url: string): string {
  if (url === '') return '(native)';
  if (url.startsWith('node:')) return 'node:internal';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nodeModules = path.lastIndexOf('node_modules/');
  if (nodeModules >= 0) {
    const [first = '', second = ''] = path.slice(nodeModules + 'node_modules/'.length).split('/');
    return first.startsWith('@') ? `${first}/${second}` : first;
  }
  const own = relative(ROOT, path);
  return own.startsWith('..') ? path : (own.split('/')[0] ?? own);
}

function placeOf(url: string, line: number): string {
  if (url === '') return '';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nodeModules = path.lastIndexOf('node_modules/');
  const shown = nodeModules >= 0 ? path.slice(nodeModules + 'node_modules/'.length) : relative(ROOT, path);
  return `${shown}:${line + 1}`;
}

/**
 * Self time per package and per function of the samples taken between `fromUs` and `toUs` (CLOCK_MONOTONIC
 * microseconds, as `process.hrtime.bigint() / 1000n` gives in any process of this machine).
 */
export function summariseProfile(file: string, fromUs: number, toUs: number, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const byPackage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let time = profile.startTime;
  let totalUs = 0;
  for (let index = 0; index < profile.samples.length; index += 1) {
    const delta = profile.timeDeltas[index] ?? 0;
    time += delta;
    if (time < fromUs || time > toUs) continue;
    const frame = nodes.get(profile.samples[index] ?? -1);
    if (frame === undefined || frame.functionName === '(idle)') continue;
    const spent = profile.timeDeltas[index + 1] ?? delta;
    totalUs += spent;
    const pkg = frame.url === '' && frame.functionName.startsWith('(') ? frame.functionName : packageOf(frame.url);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + spent);
    const name = `${frame.functionName || '(anonymous)'} ${placeOf(frame.url, frame.lineNumber)}`.trim();
    byFunction.set(name, (byFunction.get(name) ?? 0) + spent);
  }
  const ranked = (map: Map<string, number>): Array<[string, number]> =>
    [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => [name, Math.round(us / 100) / 10]);
  return { totalMs: Math.round(totalUs / 1000), byPackage: ranked(byPackage), byFunction: ranked(byFunction) };
}
