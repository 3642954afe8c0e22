import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { openModel } from '../agent/commands/context.js';
import { uris } from '../agent/commands/uri.js';
import { summary } from './stats.js';
import { Writer } from './writer.js';

/**
 * PostgreSQL charm benchmarks on real 3-unit local deployments: `pgcharm deploy` until both
 * standbys stream from the primary (pg_stat_replication), each run in a fresh model.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(root, 'dist', 'agent', 'cli.js');

function cli(model: string, args: string[]): Promise<string> {
  return new Promise((res, rej) =>
    execFile(process.execPath, [CLI, args[0]!, '--model', model, ...args.slice(1)], { env: { ...process.env, PGCHARM_MODEL: '' } }, (err, stdout, stderr) =>
      err ? rej(new Error(`pgcharm ${args.join(' ')} failed: ${stderr}`)) : res(stdout),
    ),
  );
}

async function streaming(uri: string): Promise<number> {
  const c = new pg.Client({ connectionString: uri, connectionTimeoutMillis: 1000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.query("SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name LIKE 'postgresql/%'")).rows[0].n as number;
  } catch {
    return 0;
  } finally {
    await c.end().catch(() => undefined);
  }
}

function killedAt(model: string, after: number): number | undefined {
  const lines = readFileSync(join(model, 'logs', 'controller.log'), 'utf8').trim().split('\n');
  for (const l of lines.reverse()) {
    const o = JSON.parse(l) as { time?: number; msg?: string };
    if (o.msg === 'killing unit' && (o.time ?? 0) >= after) return o.time;
  }
  return undefined;
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

interface UnitRoles {
  units: Record<string, { role: string; address: string; agent: { status: string }; workload: { status: string } }>;
}

/** Unplanned failover (kill -9 of the whole primary unit under a writer, a row every 10 ms), after the config change figures on the same deployment. */
async function failovers(runs: number) {
  const model = mkdtempSync(join(tmpdir(), 'pgcharm-bench-fo-'));
  chmodSync(model, 0o755);
  const toFirstWrite: number[] = [];
  const lostCounts: number[] = [];
  const rejoin: number[] = [];
  let config: Awaited<ReturnType<typeof configChanges>> | undefined;
  try {
    await cli(model, ['deploy', '--units', '3', '--timeout', '180']);
    const pw = (await cli(model, ['run', 'leader', 'get-password', '--wait'])).match(/password: (\S+)/)![1]!;
    const roles = async () => (JSON.parse(await cli(model, ['status', '--format', 'json'])) as UnitRoles).units;
    config = await configChanges(model, pw, roles);
    for (let i = 0; i < runs; i++) {
      const old = Object.entries(await roles()).find(([, u]) => u.role === 'primary')![0];
      const w = new Writer(model, pw);
      await w.start();
      await new Promise((r) => setTimeout(r, 1000));
      const oldPort = w.lastPort();
      const before = Date.now();
      await cli(model, ['kill', old]);
      const t0 = await until('the kill', () => killedAt(model, before), 10_000);
      const first = await until('a write on the new primary', () => w.firstAckAfter(t0, oldPort), 60_000, 10);
      toFirstWrite.push(first - t0);
      await new Promise((r) => setTimeout(r, 500));
      await w.stop();
      lostCounts.push((await w.lost()).length);
      await until('the killed unit streaming again and all settled', async () => {
        const u = await roles();
        return Object.values(u).every((x) => x.agent.status === 'idle' && x.workload.status === 'active') && u[old]?.role === 'replica' ? true : undefined;
      }, 120_000, 250);
      rejoin.push(Date.now() - t0);
    }
  } finally {
    await cli(model, ['destroy']).catch(() => undefined);
    rmSync(model, { recursive: true, force: true });
  }
  return {
    failover_kill9_primary_unit_to_first_acked_write_ms: { ...summary(toFirstWrite), goal_median_max: 3000, what: 'SIGKILL of the primary unit (agent, sidecar, Postgres) -> first write acknowledged by the new primary' },
    failover_acknowledged_writes_lost: { runs: lostCounts, total: lostCounts.reduce((a, b) => a + b, 0) },
    failover_kill9_to_old_primary_streaming_again_ms: { ...summary(rejoin), what: 'includes the 10 s reschedule delay of the killed unit' },
    ...config,
  };
}

async function settingEverywhere(ports: number[], pw: string, name: string): Promise<string[]> {
  return Promise.all(
    ports.map(async (port) => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'operator', password: pw, database: 'postgres', connectionTimeoutMillis: 500 });
      c.on('error', () => undefined);
      c.on('error', () => undefined);
      try {
        await c.connect();
        return String((await c.query('SELECT current_setting($1) AS v', [name])).rows[0].v);
      } catch {
        return '';
      } finally {
        await c.end().catch(() => undefined);
      }
    }),
  );
}

/** A reload-class change (work_mem) until every unit runs it; a restart-class one (max_connections) under a writer. */
async function configChanges(model: string, pw: string, roles: () => Promise<UnitRoles['units']>) {
  const ports = Object.values(await roles()).map((u) => Number(u.address.split(':')[1]));
  const reload: number[] = [];
  for (let i = 0; i < 5; i++) {
    const value = `${5 + i}MB`;
    await cli(model, ['config', `work-mem=${value}`]);
    const t0 = Date.now(); // the config is stored when the CLI returns
    await until('work_mem everywhere', async () => ((await settingEverywhere(ports, pw, 'work_mem')).every((v) => v === value) ? true : undefined), 60_000, 10);
    reload.push(Date.now() - t0);
  }
  let first = '';
  const w = new Writer(model, pw);
  await w.start();
  await new Promise((r) => setTimeout(r, 1000));
  const t0 = Date.now();
  await cli(model, ['config', 'max-connections=120']);
  await until('max_connections everywhere', async () => ((await settingEverywhere(ports, pw, 'max_connections')).every((v) => v === '120') ? true : undefined), 120_000, 50);
  await new Promise((r) => setTimeout(r, 1000));
  await w.stop();
  const lost = (await w.lost()).length;
  // Switchover there and back under a writer: the longest write gap of each.
  const switchover: number[] = [];
  let switchLost = 0;
  for (const target of ['', 'back']) {
    const before = Object.entries(await roles()).find(([, u]) => u.role === 'primary')![0];
    const sw = new Writer(model, pw);
    await sw.start();
    await new Promise((r) => setTimeout(r, 1000));
    const t1 = Date.now();
    await cli(model, ['run', 'leader', 'switchover', ...(target === 'back' ? [`to=${first}`] : []), '--wait']);
    await new Promise((r) => setTimeout(r, 1000));
    await sw.stop();
    switchover.push(sw.longestGapAfter(t1));
    switchLost += (await sw.lost()).length;
    if (target === '') first = before;
    await until('settled after switchover', async () => (Object.values(await roles()).every((u) => u.agent.status === 'idle' && u.workload.status === 'active' && ['primary', 'replica'].includes(u.role)) ? true : undefined), 120_000, 250);
  }
  return {
    switchover_longest_write_gap_ms: { ...summary(switchover), acknowledged_writes_lost: switchLost, what: 'pgcharm run leader switchover (there and back) under a writer' },
    reload_change_applied_all_units_ms: { ...summary(reload), goal_median_max: 1000, what: '`pgcharm config work-mem=...` stored -> every unit shows it (SHOW work_mem)' },
    rolling_restart_longest_write_gap_ms: { value: w.longestGapAfter(t0), goal_max: 2000, acknowledged_writes_lost: lost, what: 'max-connections change (restart class) under a writer, replicas then the primary restart' },
  };
}

/** `pgcharm deploy --units 3` started -> both standbys streaming, in ms, one entry per run. */
export async function bootstrapRuns(runs: number): Promise<number[]> {
  const bootstrap: number[] = [];
  for (let i = 0; i < runs; i++) {
    const model = mkdtempSync(join(tmpdir(), 'pgcharm-bench-pg-'));
    chmodSync(model, 0o755);
    try {
      const t0 = Date.now();
      const deploy = cli(model, ['deploy', '--units', '3', '--timeout', '180']);
      let uri = '';
      for (;;) {
        // In-process: a `pgcharm uri` child per poll would take a core from the units being measured.
        if (!uri) uri = (await openModel(model).then((ctx) => uris(ctx, 'primary')).catch(() => []))[0] ?? '';
        if (uri && (await streaming(uri)) === 2) break;
        if (Date.now() - t0 > 180_000) throw new Error('standbys did not stream within 180 s');
        await new Promise((r) => setTimeout(r, 20));
      }
      bootstrap.push(Date.now() - t0);
      await deploy;
    } finally {
      await cli(model, ['destroy']).catch(() => undefined);
      rmSync(model, { recursive: true, force: true });
    }
  }
  return bootstrap;
}

export async function benchPostgres(opts: { bootstrapRuns: number; failoverRuns: number }) {
  const bootstrap = await bootstrapRuns(opts.bootstrapRuns);
  return {
    ...(await failovers(opts.failoverRuns)),
    bootstrap_3_units_to_standbys_streaming_ms: { ...summary(bootstrap), goal_median_max: 4000, what: '`pgcharm deploy --units 3` started -> both standbys streaming (includes starting the controller)' },
  };
}
