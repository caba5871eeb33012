import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Linux clock ticks per second (`getconf CLK_TCK`), the unit of /proc/PID/stat's CPU times. */
const TICKS_PER_SECOND = 100;

/** CPU time (user + system) a process has used so far, in ms; 0 once it is gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, inside parentheses): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** Resident set size of a process, in bytes; 0 once it is gone. */
export function rssBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] === undefined ? 0 : Number(match[1]) * 1024;
  } catch {
    return 0;
  }
}

/** Write system calls (write, writev: each send on a socket) a process has made so far; 0 once it is gone. */
export function writeCalls(pid: number): number {
  try {
    const match = /^syscw:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return match?.[1] === undefined ? 0 : Number(match[1]);
  } catch {
    return 0;
  }
}

/** A counter that only grows (CPU ms, write calls) of several processes, by name, between `start()` and `stop()`. */
export class ProcessMeter {
  private readonly startValues = new Map<string, number>();
  private readonly pids: () => Map<string, number[]>;
  private readonly read: (pid: number) => number;

  constructor(pids: () => Map<string, number[]>, read: (pid: number) => number = cpuMs) {
    this.pids = pids;
    this.read = read;
  }

  start(): void {
    this.startValues.clear();
    for (const [name, list] of this.pids()) this.startValues.set(name, list.reduce((sum, pid) => sum + this.read(pid), 0));
  }

  /** Each process's growth since `start()`. A name whose processes changed meanwhile is measured on those of now. */
  stop(): Map<string, number> {
    const used = new Map<string, number>();
    for (const [name, list] of this.pids()) used.set(name, list.reduce((sum, pid) => sum + this.read(pid), 0) - (this.startValues.get(name) ?? 0));
    return used;
  }
}

/** The local TCP ports of a process's sockets (to tell whose connection a Redis client address is). */
export function localPorts(pid: number): Set<number> {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (match?.[1] !== undefined) inodes.add(match[1]);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return new Set();
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let lines: string[];
    try {
      lines = readFileSync(table, 'utf8').split('\n').slice(1);
    } catch {
      continue;
    }
    for (const line of lines) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      const inode = fields[9];
      if (local === undefined || inode === undefined || !inodes.has(inode)) continue;
      ports.add(Number.parseInt(local.split(':')[1] ?? '0', 16));
    }
  }
  return ports;
}
