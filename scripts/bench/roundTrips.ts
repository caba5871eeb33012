import { Redis } from 'ioredis';
import type { Knex } from 'knex';
import { localPorts } from './processStats.js';

/** Redis traffic of one client process: round trips (a MULTI…EXEC block is one) and commands by name. */
export interface RedisTraffic {
  roundTrips: number;
  commands: Map<string, number>;
}

/**
 * Counts the commands Redis receives, with MONITOR, per process (a client's address is matched to the process
 * that owns its local port). Commands that Lua scripts run are not round trips and are left out.
 */
export class RedisCommandCounter {
  private readonly monitorConnection: Redis;
  private readonly bySource = new Map<string, RedisTraffic>();
  private readonly inMulti = new Set<string>();
  private monitor: Awaited<ReturnType<Redis['monitor']>> | undefined;

  constructor(redisUrl: string) {
    this.monitorConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  }

  /** Set when the MONITOR stream broke (ioredis may lose track of a busy one): the counts are then incomplete. */
  failure: string | undefined;

  async start(): Promise<void> {
    this.monitorConnection.on('error', (error: Error) => (this.failure ??= error.message));
    this.monitor = await this.monitorConnection.monitor();
    this.monitor.on('error', (error: Error) => (this.failure ??= error.message));
    this.monitor.on('monitor', (_time: string, args: string[], source: string) => this.count(source, (args[0] ?? '').toLowerCase()));
  }

  private count(source: string, command: string): void {
    if (source === 'lua') return;
    let traffic = this.bySource.get(source);
    if (traffic === undefined) {
      traffic = { roundTrips: 0, commands: new Map() };
      this.bySource.set(source, traffic);
    }
    traffic.commands.set(command, (traffic.commands.get(command) ?? 0) + 1);
    if (command === 'multi') {
      this.inMulti.add(source);
      traffic.roundTrips += 1;
    } else if (command === 'exec' || command === 'discard') {
      this.inMulti.delete(source);
    } else if (!this.inMulti.has(source)) {
      traffic.roundTrips += 1;
    }
  }

  /** Stops counting; the traffic of each named process (by its pid), and of every other client as `other`. */
  stop(processes: Map<string, number[]>): Map<string, RedisTraffic> {
    this.monitor?.disconnect();
    this.monitorConnection.disconnect();
    const owner = new Map<number, string>();
    for (const [name, pids] of processes) for (const pid of pids) for (const port of localPorts(pid)) owner.set(port, name);
    const result = new Map<string, RedisTraffic>();
    for (const [source, traffic] of this.bySource) {
      const name = owner.get(Number(source.split(':').at(-1))) ?? 'other';
      const total = result.get(name) ?? { roundTrips: 0, commands: new Map() };
      total.roundTrips += traffic.roundTrips;
      for (const [command, count] of traffic.commands) total.commands.set(command, (total.commands.get(command) ?? 0) + count);
      result.set(name, total);
    }
    return result;
  }
}

export interface StatementCount {
  role: string;
  calls: number;
  meanMs: number;
  query: string;
}

/** pg_stat_statements (on a private server that preloads it): forgets what was counted so far, in every database. */
export async function resetStatements(db: Knex): Promise<void> {
  await db.raw('SELECT pg_stat_statements_reset()');
}

/** The statements run in `database` since the last reset, by role, most called first. */
export async function countStatements(db: Knex, database: string): Promise<StatementCount[]> {
  const result = await db.raw<{ rows: Array<{ role: string; calls: string; mean: number; query: string }> }>(
    `SELECT r.rolname AS role, s.calls, s.mean_exec_time AS mean, s.query
       FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid
      WHERE d.datname = ? ORDER BY s.calls DESC`,
    [database],
  );
  return result.rows.map((row) => ({ role: row.role, calls: Number(row.calls), meanMs: row.mean, query: row.query.replace(/\s+/g, ' ') }));
}
