import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Lease } from '#client-node';
import { pino } from 'pino';
import { openModel } from '../agent/commands/context.js';
import { freePort } from '../agent/ports.js';
import { objects } from '../agent/runtime/names.js';
import { watchPath, type Watcher } from '../agent/runtime/store.js';
import { healthyPrimary, saveLogs, until } from './cluster.js';
import { haEvents } from './ha-events.js';
import { LogWatch, rotatedGroup } from './log-stats.js';
import { PgcharmCluster } from './pgcharm.js';

/**
 * Issue 13, "Saturation": pgbench at full speed against a 3-unit deployment's primary while a
 * busy loop per core starves everyone of CPU. A HA system that takes its own slowness for a
 * failure fences, fails over or steps down; the goal is that it does none of it. The same
 * pgbench and hog against a plain PostgreSQL 15 give the TPS the HA machinery costs.
 */

const PG_BIN = '/usr/lib/postgresql/15/bin';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface SaturationOptions {
  minutes: number;
  clients: number;
  threads: number;
  log: (s: string) => void;
}

interface PgbenchResult {
  tps: number | null;
  exit_code: number;
  transactions: number | null;
  /** Clients that gave up (a backend died under them: a fence, a failover). */
  aborted_clients: number;
  errors: string[];
}

/** pgbench with the password in the environment; resolves whatever its exit code. */
function pgbench(args: string[], password: string, timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(join(PG_BIN, 'pgbench'), args, { env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '5' }, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr }),
    ),
  );
}

function parsePgbench(r: { code: number; out: string }): PgbenchResult {
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(r.out);
  const tx = /number of transactions actually processed: (\d+)/.exec(r.out);
  const errors = r.out.split('\n').filter((l) => /aborted|error/i.test(l));
  return { tps: tps ? Math.round(Number(tps[1])) : null, exit_code: r.code, transactions: tx ? Number(tx[1]) : null, aborted_clients: errors.filter((l) => /client \d+ aborted/.test(l)).length, errors: errors.slice(0, 3) };
}

/** A full-speed pgbench run (initialized first) against one server, a busy loop per core beside it. */
async function loadedRun(port: number, user: string, password: string, o: SaturationOptions): Promise<{ init_ms: number; pgbench: PgbenchResult }> {
  const conn = ['-h', '127.0.0.1', '-p', String(port), '-U', user];
  const t0 = Date.now();
  // Scale = clients: each client mostly updates its own branch row instead of queueing on one.
  const init = await pgbench(['-i', '-q', '-s', String(o.clients), ...conn, 'postgres'], password, 600_000);
  if (init.code !== 0) throw new Error(`pgbench -i failed (exit ${init.code}): ${init.out.slice(-500)}`);
  const initMs = Date.now() - t0;
  const hogs = hog(o.minutes * 60_000 + 30_000);
  try {
    const run = await pgbench(['-c', String(o.clients), '-j', String(o.threads), '-T', String(o.minutes * 60), ...conn, 'postgres'], password, o.minutes * 60_000 + 300_000);
    return { init_ms: initMs, pgbench: parsePgbench(run) };
  } finally {
    for (const h of hogs) h.kill('SIGKILL');
  }
}

/** One busy loop per core; each also ends by itself after `ms`, should this process die first. */
function hog(ms: number): ChildProcess[] {
  return cpus().map(() => spawn(process.execPath, ['-e', `const end = Date.now() + ${ms}; while (Date.now() < end);`], { stdio: 'ignore' }));
}

/** Primary-lease changes seen by a watch (holder or transitions), after the first event. */
function watchLease(model: string, app: string): Promise<{ changes: { at: string; holder: string; transitions: number }[]; events: () => number; stop: () => Promise<void> }> {
  return openModel(model, app).then((ctx) => {
    const name = objects.primaryLease(app);
    const changes: { at: string; holder: string; transitions: number }[] = [];
    let last: string | undefined;
    let events = 0;
    const on = (l: V1Lease) => {
      if (l.metadata?.name !== name) return;
      events++; // every renewal: shows the watch was alive
      const now = `${l.spec?.holderIdentity ?? ''}#${l.spec?.leaseTransitions ?? 0}`;
      if (last !== undefined && now !== last) changes.push({ at: new Date().toISOString(), holder: l.spec?.holderIdentity ?? '', transitions: l.spec?.leaseTransitions ?? 0 });
      last = now;
    };
    const ns = ctx.kube.namespace;
    // Not on stdout: the bench's JSON is there.
    const log = pino({ level: 'warn' }, pino.destination(2));
    const w: Watcher = watchPath<V1Lease>(ctx.kube, `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`, () => ctx.kube.coordination.listNamespacedLease({ namespace: ns }), '', { upsert: on, remove: on }, log);
    return { changes, events: () => events, stop: () => w.stop() };
  });
}

async function readLease(model: string, app: string): Promise<{ holder: string; transitions: number }> {
  const ctx = await openModel(model, app);
  const l = await ctx.kube.coordination.readNamespacedLease({ name: objects.primaryLease(app), namespace: ctx.kube.namespace });
  return { holder: l.spec?.holderIdentity ?? '', transitions: l.spec?.leaseTransitions ?? 0 };
}

async function pgcharmRun(o: SaturationOptions) {
  const cluster = new PgcharmCluster(3);
  let watch: Awaited<ReturnType<typeof watchLease>> | undefined;
  try {
    await cluster.start();
    const settleErrors = await cluster.deployed();
    const c = await cluster.credentials();
    const primary = await until('one primary, 2 standbys streaming', () => healthyPrimary(cluster, c), 240_000, 200);
    const app = 'postgresql';
    const logs = new LogWatch(() => Object.entries(cluster.logs()).map(([name, path]) => ({ path, ...rotatedGroup(name) })));
    const settings = await primarySettings(cluster.portOf(primary), c);
    watch = await watchLease(cluster.model, app);
    const before = await readLease(cluster.model, app);
    logs.sample();
    o.log(`pgcharm: primary ${primary}; pgbench -i, then ${o.minutes} min of pgbench -c ${o.clients} -j ${o.threads} with ${cpus().length} busy loops`);
    const run = await loadedRun(cluster.portOf(primary), c.user, c.password, o);
    const after = await readLease(cluster.model, app);
    logs.sample();
    const ev = haEvents(logs.text());
    const healthyAfter = await until('healthy after the run', () => healthyPrimary(cluster, c), 60_000, 200).catch(() => null);
    return {
      ...run,
      primary_before: primary,
      primary_after: healthyAfter,
      lease_transitions: after.transitions - before.transitions,
      lease_changes_watched: watch.changes,
      lease_watch_events: watch.events(),
      fences: ev.fences,
      fence_lines: ev.fence_lines,
      failovers: ev.promotions,
      step_downs: ev.step_downs,
      agent_warnings: ev.warnings,
      primary_settings: settings,
      ...(settleErrors.length ? { bootstrap_hook_errors: settleErrors } : {}),
    };
  } catch (e) {
    o.log(`pgcharm: logs kept in ${saveLogs(cluster, 'saturation')}`);
    throw e;
  } finally {
    await watch?.stop().catch(() => undefined);
    await cluster.destroy();
  }
}

/** The settings that make the TPS of an HA primary differ from a plain server's. */
async function primarySettings(port: number, c: { user: string; password: string }): Promise<Record<string, string>> {
  const pg = (await import('pg')).default;
  const client = new pg.Client({ host: '127.0.0.1', port, user: c.user, password: c.password, database: 'postgres' });
  await client.connect();
  try {
    const r = await client.query<{ name: string; setting: string }>(
      "SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', 'synchronous_standby_names', 'wal_level', 'max_wal_size', 'fsync', 'full_page_writes', 'wal_log_hints')",
    );
    return Object.fromEntries(r.rows.map((x) => [x.name, x.setting]));
  } finally {
    await client.end();
  }
}

/** A plain PostgreSQL 15 (initdb defaults, trust on loopback) in a temp dir, as the postgres user when root. */
async function plainRun(o: SaturationOptions) {
  const dir = mkdtempSync(join(tmpdir(), 'pgcharm-bench-plain-'));
  const data = join(dir, 'data');
  const root = process.getuid?.() === 0;
  const ids = root ? { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) } : undefined;
  if (ids) chownSync(dir, ids.uid, ids.gid);
  const as = ids ? { uid: ids.uid, gid: ids.gid } : {};
  let server: ChildProcess | undefined;
  try {
    execFileSync(join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync'], { ...as, cwd: dir, stdio: 'ignore' });
    const port = await freePort();
    server = spawn(join(PG_BIN, 'postgres'), ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`], { ...as, cwd: dir, stdio: 'ignore' });
    await until('plain PostgreSQL accepting connections', async () => {
      const r = await new Promise<number>((res) => execFile(join(PG_BIN, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)], (err) => res(err ? 1 : 0)));
      return r === 0 ? true : undefined;
    }, 60_000, 100);
    o.log(`plain PostgreSQL 15 on port ${port}: pgbench -i, then ${o.minutes} min of pgbench with the busy loops`);
    return await loadedRun(port, 'postgres', '', o);
  } finally {
    if (server?.pid && server.exitCode === null) {
      server.kill('SIGINT'); // fast shutdown
      for (let i = 0; i < 100 && server.exitCode === null; i++) await sleep(100);
      if (server.exitCode === null) server.kill('SIGKILL');
    }
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchSaturation(o: SaturationOptions) {
  if (!existsSync(join(PG_BIN, 'pgbench'))) throw new Error(`${PG_BIN}/pgbench not found: bash scripts/install-postgres.sh 15 installs it (package postgresql-15)`);
  const pgcharm = await pgcharmRun(o);
  const plain = await plainRun(o);
  // Clients that aborted (a fence killed their backends) stop counting: the TPS left compares nothing.
  const aborted = pgcharm.pgbench.aborted_clients > 0;
  const ratio = !aborted && pgcharm.pgbench.tps && plain.pgbench.tps ? Math.round((pgcharm.pgbench.tps / plain.pgbench.tps) * 100) / 100 : null;
  return {
    what: {
      load: `pgbench -i -s ${o.clients}, then pgbench -c ${o.clients} -j ${o.threads} -T ${o.minutes * 60} (TPC-B-like) against the primary, with ${cpus().length} node busy loops (one per core) for the whole run`,
      lease: 'Lease <app>-primary: leaseTransitions before and after, and every holder/transitions change a watch saw',
      fences: 'sidecar log lines of the fence watchdog starting "fenced:"',
      failovers: 'agent log "ha" lines with decision "promoted"; step_downs: decision "step down"',
      plain: 'PostgreSQL 15, initdb defaults (no replication), same pgbench and busy loops; the ratio is pgcharm TPS / plain TPS',
    },
    pgcharm,
    plain,
    tps_ratio_pgcharm_over_plain: ratio,
    ...(aborted ? { tps_ratio_note: `no ratio: ${pgcharm.pgbench.aborted_clients} of ${o.clients} pgbench clients against pgcharm aborted` } : {}),
    goals: { lease_changes: pgcharm.lease_transitions, fences: pgcharm.fences, failovers: pgcharm.failovers, met: pgcharm.lease_transitions === 0 && pgcharm.fences === 0 && pgcharm.failovers === 0 },
  };
}
