import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { until } from './cluster.js';
import { pgcharmCli as cli } from './pgcharm.js';
import { summary } from './stats.js';
import { Writer } from './writer.js';

/**
 * pgcharm-only figures on one real 3-unit local deployment: a reload-class change applied on
 * every unit, the longest write gap in a rolling restart and in a switchover there and back.
 * (Failover, postmaster crash and bootstrap are measured side by side with Patroni: compare.ts.)
 */

interface UnitRoles {
  units: Record<string, { role: string; address: string; agent: { status: string }; workload: { status: string } }>;
}

async function settingEverywhere(ports: number[], pw: string, name: string): Promise<string[]> {
  return Promise.all(
    ports.map(async (port) => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'operator', password: pw, database: 'postgres', connectionTimeoutMillis: 500 });
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

export async function benchPostgres() {
  const model = mkdtempSync(join(tmpdir(), 'pgcharm-bench-pg-'));
  chmodSync(model, 0o755);
  try {
    await cli(model, ['deploy', '--units', '3', '--timeout', '180']);
    const pw = (await cli(model, ['run', 'leader', 'get-password', '--wait'])).match(/password: (\S+)/)![1]!;
    const roles = async () => (JSON.parse(await cli(model, ['status', '--format', 'json'])) as UnitRoles).units;
    return await configChanges(model, pw, roles);
  } finally {
    await cli(model, ['destroy']).catch(() => undefined);
    rmSync(model, { recursive: true, force: true });
  }
}
