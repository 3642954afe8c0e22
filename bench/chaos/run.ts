import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { healthyPrimary, probe, until } from '../cluster.js';
import { PgcharmCluster, pgcharmCli } from '../pgcharm.js';
import { Writer } from '../writer.js';
import { FAULTS, type Fault } from './faults.js';
import { Rng } from './rng.js';

/**
 * Bounded chaos on a local 3-unit deployment under a continuous writer. Each cycle injects one
 * fault picked by the seeded PRNG, then checks: every acknowledged write is on the current
 * primary, there was never more than one writable unit (all units probed every 50 ms), every
 * unit streams again within the bound, and no data directory disappeared. The first violation
 * stops the run; the seed reproduces the sequence of faults and the unit logs are kept.
 */

export interface ChaosOptions {
  cycles: number;
  seed: number;
  /** Only these faults (default: all). */
  faults?: string[];
  /** How long the cluster may take to be healthy again after a fault. */
  healBoundMs: number;
  /** Where the logs of a failed run are copied. */
  outDir: string;
  log: (s: string) => void;
}

export interface CycleResult {
  cycle: number;
  fault: string;
  details: Record<string, unknown>;
  /** The primary's replication as the fault hit: what a failover had to respect. */
  primary_before: Record<string, unknown>;
  healthy_after_ms: number;
  primary_after: string;
  acknowledged_writes_so_far: number;
  lost: number;
  max_writable_at_once: number;
}

export interface ChaosResult {
  seed: number;
  cycles_requested: number;
  cycles: CycleResult[];
  result: 'pass' | 'fail';
  acknowledged_writes: number;
  acknowledged_writes_lost: number;
  double_primaries: number;
  violation?: { cycle: number; fault: string; what: string };
  logs?: string;
  reproduce?: string;
}

class Violation extends Error {}

/** Inodes of every PostgreSQL data directory (PG_VERSION inside) under the units' storage. */
function dataDirs(model: string): Map<number, string> {
  const out = new Map<number, string>();
  const units = join(model, 'units');
  if (!existsSync(units)) return out;
  for (const u of readdirSync(units)) {
    const storage = join(units, u, 'storage', 'pgdata');
    if (!existsSync(storage)) continue;
    for (const d of readdirSync(storage)) {
      const dir = join(storage, d);
      if (existsSync(join(dir, 'PG_VERSION'))) out.set(statSync(dir).ino, dir);
    }
  }
  return out;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const rng = new Rng(o.seed);
  const faults: Fault[] = o.faults?.length ? FAULTS.filter((f) => o.faults!.includes(f.name)) : FAULTS;
  if (!faults.length) throw new Error(`no such fault: ${o.faults!.join(', ')} (faults: ${FAULTS.map((f) => f.name).join(', ')})`);
  const cluster = new PgcharmCluster();
  const removed = new Set<string>();
  const result: ChaosResult = { seed: o.seed, cycles_requested: o.cycles, cycles: [], result: 'pass', acknowledged_writes: 0, acknowledged_writes_lost: 0, double_primaries: 0 };
  let writer: Writer | undefined;
  let probing = true;
  let maxWritable = 0;
  let doubleAt: { at: number; units: string[] } | undefined;
  let prober: Promise<void> = Promise.resolve();
  let current = { cycle: 0, fault: 'bootstrap' };
  try {
    await cluster.start();
    const creds = await cluster.credentials();
    const ttlMs = 2000;
    let primary = await until('the first healthy cluster', () => healthyPrimary(cluster, creds), 240_000, 50);
    // Some bulk, so a clone takes long enough to be interrupted. A bulk write on a busy machine
    // may meet a failover of its own: then again, on whichever unit is primary then.
    for (let attempt = 1; ; attempt++) {
      const c = new pg.Client({ host: '127.0.0.1', port: cluster.portOf(primary), ...creds, database: 'postgres' });
      c.on('error', () => undefined);
      try {
        await c.connect();
        await c.query("CREATE TABLE IF NOT EXISTS ballast AS SELECT i, repeat('x', 200) AS pad FROM generate_series(1, 200000) i");
        break;
      } catch (e) {
        if (attempt >= 3) throw e;
        primary = await until('a healthy cluster after the ballast write failed', () => healthyPrimary(cluster, creds), 120_000, 50);
      } finally {
        await c.end().catch(() => undefined);
      }
    }
    writer = new Writer({ ports: () => cluster.ports(), ...creds });
    await writer.start();
    // Every unit probed every 50 ms: two writable at once is the one thing that must never happen.
    prober = (async () => {
      while (probing) {
        const names = cluster.nodeNames();
        const got = await Promise.all(names.map((n) => probe(cluster.portOf(n), creds, 300)));
        const writable = names.filter((_, i) => got[i]?.writable);
        maxWritable = Math.max(maxWritable, writable.length);
        if (writable.length > 1 && !doubleAt) doubleAt = { at: Date.now(), units: writable };
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    let dirs = dataDirs(cluster.model);
    for (let cycle = 1; cycle <= o.cycles; cycle++) {
      const fault = rng.pick(faults);
      current = { cycle, fault: fault.name };
      maxWritable = 0;
      const before = await replicationState(cluster.portOf(primary), creds);
      o.log(`cycle ${cycle}/${o.cycles}: ${fault.name} (primary ${primary}; ${before.synchronous_standby_names || 'no synchronous standbys'})`);
      const t0 = Date.now();
      const injected = await fault.run({ cluster, rng, primary, removed, log: o.log, ttlMs });
      let healthyAt: number;
      try {
        primary = await until(`every unit streaming again within ${o.healBoundMs / 1000} s`, () => healthyPrimary(cluster, creds), o.healBoundMs, 100);
        healthyAt = Date.now();
      } catch (e) {
        const states = Object.fromEntries(await Promise.all(cluster.nodeNames().map(async (n) => [n, (await probe(cluster.portOf(n), creds)) ?? 'unreachable'] as const)));
        throw new Violation(`${(e as Error).message}; units: ${JSON.stringify(states)}`);
      }
      if (injected.afterHealthy) {
        await injected.afterHealthy();
        primary = await until('healthy after undoing the fault', () => healthyPrimary(cluster, creds), o.healBoundMs, 100);
      }
      // Writes go on for a moment on the healed cluster, then every acknowledged one is looked for.
      await new Promise((r) => setTimeout(r, 500));
      const lost = await writer.lost();
      const now = dataDirs(cluster.model);
      const gone = [...dirs].filter(([ino, d]) => !now.has(ino) && ![...removed].some((u) => d.includes(`/units/${u.replace('/', '-')}/`)));
      const r: CycleResult = {
        cycle,
        fault: fault.name,
        details: injected.details,
        primary_before: { unit: primary, ...before },
        healthy_after_ms: healthyAt - t0,
        primary_after: primary,
        acknowledged_writes_so_far: writer.acked.length,
        lost: lost.length,
        max_writable_at_once: maxWritable,
      };
      result.cycles.push(r);
      o.log(`  healthy after ${r.healthy_after_ms} ms, primary ${primary}, ${writer.acked.length} writes acknowledged, ${lost.length} lost, at most ${maxWritable} writable at once`);
      if (doubleAt) {
        result.double_primaries++;
        throw new Violation(`two writable primaries at once: ${doubleAt.units.join(' and ')} at ${new Date(doubleAt.at).toISOString()}`);
      }
      if (lost.length) {
        result.acknowledged_writes_lost += lost.length;
        const byPort = new Map(cluster.nodeNames().map((n) => [cluster.portOf(n), n]));
        const which = lost.slice(0, 20).map((id) => {
          const a = writer!.acked.find((x) => x.id === id)!;
          return `${id} (acknowledged by ${byPort.get(a.port) ?? a.port} at ${new Date(a.at).toISOString()}, ${a.at - t0} ms after the fault)`;
        });
        throw new Violation(`${lost.length} acknowledged writes missing on the primary ${primary}: ${which.join('; ')}${lost.length > 20 ? '; ...' : ''}`);
      }
      if (gone.length) throw new Violation(`data directories gone: ${gone.map(([, d]) => d).join(', ')}`);
      dirs = now;
    }
  } catch (e) {
    result.result = 'fail';
    result.violation = { ...current, what: e instanceof Violation ? e.message : `the chaos run itself failed: ${(e as Error).message}` };
    result.reproduce = `npm run chaos -- --cycles ${o.cycles} --seed ${o.seed}${o.faults?.length ? ` --faults ${o.faults.join(',')}` : ''}`;
    result.logs = keepLogs(cluster, o.outDir, o.seed);
  } finally {
    probing = false;
    await prober;
    await writer?.stop();
    result.acknowledged_writes = writer?.acked.length ?? 0;
    if (result.result === 'fail') await pgcharmCli(cluster.model, ['status']).then((s) => o.log(s)).catch(() => undefined);
    await cluster.destroy();
  }
  return result;
}

/** synchronous_standby_names and the standbys as the primary sees them. */
async function replicationState(port: number, creds: { user: string; password: string }): Promise<{ synchronous_standby_names: string; standbys: unknown[] }> {
  const c = new pg.Client({ host: '127.0.0.1', port, ...creds, database: 'postgres', connectionTimeoutMillis: 1000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const names = (await c.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s")).rows[0]!.s;
    const standbys = (await c.query("SELECT application_name AS unit, state, sync_state, flush_lsn::text AS flush FROM pg_stat_replication ORDER BY 1")).rows;
    return { synchronous_standby_names: names, standbys };
  } catch (e) {
    return { synchronous_standby_names: `unknown (${(e as Error).message})`, standbys: [] };
  } finally {
    await c.end().catch(() => undefined);
  }
}

function keepLogs(cluster: PgcharmCluster, outDir: string, seed: number): string {
  const dir = join(outDir, `seed-${seed}-${new Date().toISOString().replace(/[:.]/g, '')}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, path] of Object.entries(cluster.logs())) {
    try {
      copyFileSync(path, join(dir, name));
    } catch {
      /* a log that was never written */
    }
  }
  return dir;
}
