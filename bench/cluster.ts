import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { BootstrapTimeline } from './bootstrap-timeline.js';

/**
 * What the side-by-side benchmark and the chaos suite need from a 3-node HA PostgreSQL, so the
 * same client, faults and clock run against pgcharm and against Patroni.
 */
export interface Cluster {
  readonly name: string;
  /** Starts the processes; bootstrap goes on in the background (see `healthy`). */
  start(): Promise<void>;
  /** The role the writer and the probes connect as, and its password (known once started). */
  credentials(): Promise<{ user: string; password: string }>;
  nodeNames(): string[];
  portOf(node: string): number;
  ports(): number[];
  /**
   * SIGKILL of everything belonging to the node; it comes back after the cluster's reschedule
   * delay, or with `holdDown` only when `revive` is called. Returns the kill time.
   */
  killNode(node: string, o?: { holdDown?: boolean }): Promise<number>;
  /** Starts a node killed with `holdDown` again. */
  revive(node: string): Promise<void>;
  /** SIGKILL of the node's postmaster only. Returns the kill time. */
  killPostmaster(node: string): Promise<number>;
  /**
   * Where the bootstrap just measured spent its time (ms from `t0`, the start of the
   * processes, to each step), for systems that can tell.
   */
  bootstrapTimeline?(t0: number, healthyAt: number): Promise<BootstrapTimeline>;
  /** Log files worth reading when something went wrong. */
  logs(): Record<string, string>;
  destroy(): Promise<void>;
}

export interface ServerState {
  writable: boolean;
  streaming: number;
  receiver: string | null;
}

const STATE_SQL = `SELECT NOT pg_is_in_recovery() AS writable,
                (SELECT count(*)::int FROM pg_stat_replication WHERE state = 'streaming') AS streaming,
                (SELECT status FROM pg_stat_wal_receiver) AS receiver`;

const connect = (port: number, c: { user: string; password: string }, timeoutMs: number) => {
  // query_timeout: a frozen server would otherwise keep a query on an open connection waiting for ever.
  const client = new pg.Client({ host: '127.0.0.1', port, user: c.user, password: c.password, database: 'postgres', connectionTimeoutMillis: timeoutMs, statement_timeout: 2000, query_timeout: timeoutMs + 2000 });
  client.on('error', () => undefined);
  return client;
};

/**
 * Connections `probe(..., { keep: true })` keeps open between calls: a wait polled every 20 ms
 * otherwise made 3 connections (fork, SCRAM on both sides) per round, ~150 a second once the
 * servers are up, on the 2 cores it is measuring. Closed by closeProbes.
 */
const kept = new Map<string, pg.Client>();

/**
 * One query to one server: is it writable, how many standbys stream from it, is its WAL
 * receiver streaming. `keep`: on a connection kept open (made again after any error).
 */
export async function probe(port: number, c: { user: string; password: string }, timeoutMs = 500, o: { keep?: boolean } = {}): Promise<ServerState | undefined> {
  const key = `${port}\0${c.user}\0${c.password}`;
  let client = o.keep ? kept.get(key) : undefined;
  const fresh = !client;
  try {
    if (!client) {
      client = connect(port, c, timeoutMs);
      await client.connect();
      if (o.keep) kept.set(key, client);
    }
    return (await client.query<ServerState>(STATE_SQL)).rows[0]!;
  } catch {
    kept.delete(key);
    await client?.end().catch(() => undefined);
    client = undefined;
    return undefined;
  } finally {
    if (!o.keep && fresh) await client?.end().catch(() => undefined);
  }
}

/** Closes the connections kept by probes with `keep`. */
export async function closeProbes(): Promise<void> {
  const all = [...kept.values()];
  kept.clear();
  await Promise.all(all.map((c) => c.end().catch(() => undefined)));
}

/** Every node's state at once. */
export async function states(cluster: Cluster, c: { user: string; password: string }, o: { keep?: boolean } = {}): Promise<Record<string, ServerState | undefined>> {
  const names = cluster.nodeNames();
  const got = await Promise.all(names.map((n) => probe(cluster.portOf(n), c, 500, o)));
  return Object.fromEntries(names.map((n, i) => [n, got[i]]));
}

/** The writable nodes right now (more than one is a split brain). */
export async function writableNodes(cluster: Cluster, c: { user: string; password: string }): Promise<string[]> {
  return Object.entries(await states(cluster, c)).filter(([, s]) => s?.writable).map(([n]) => n);
}

/** One writable node with every other node streaming from it: the node's name, else undefined. */
export async function healthyPrimary(cluster: Cluster, c: { user: string; password: string }, o: { keep?: boolean } = {}): Promise<string | undefined> {
  return healthyOf(await states(cluster, c, o));
}

/** The node that is the one writable one with every other streaming from it, in `s`; else undefined. */
export function healthyOf(s: Record<string, ServerState | undefined>): string | undefined {
  const w = Object.entries(s).filter(([, x]) => x?.writable);
  if (w.length !== 1) return undefined;
  const others = Object.entries(s).filter(([n]) => n !== w[0]![0]);
  return w[0]![1]!.streaming === others.length && others.every(([, x]) => x?.receiver === 'streaming') ? w[0]![0] : undefined;
}

export async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Copies the cluster's logs to `.bench/logs/<name>-<time>/` (before a destroy deletes them); returns that directory. */
export function saveLogs(cluster: Pick<Cluster, 'name' | 'logs'>, why: string): string {
  const dir = join('.bench', 'logs', `${cluster.name}-${why}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, path] of Object.entries(cluster.logs())) if (existsSync(path)) copyFileSync(path, join(dir, name.includes('.') ? name : `${name}.log`));
  return dir;
}
