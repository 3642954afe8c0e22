#!/usr/bin/env node
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { compare, type SystemFigures } from './compare.js';
import { benchPostgres } from './postgres.js';
import { benchRuntime } from './runtime.js';
import { benchSidecar } from './sidecar.js';

/**
 * `npm run bench`: JSON on stdout (`npm run -s bench` leaves out npm's banners) and in
 * .bench/latest.json, a human summary on stderr, failover timelines as .bench/failover-run-N.svg.
 * `npm run bench -- --only compare --runs 3 --systems pgcharm,patroni-tuned` narrows it down
 * (or BENCH_ONLY=sidecar|runtime|postgres|compare, BENCH_RUNS, BENCH_SYSTEMS).
 */
function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (!v || v.startsWith('--')) throw new Error(`--${name} needs a value`);
  return v;
}
const num = (name: string, dflt: number) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(process.env[name])}`);
  return v;
};
const runs = () => {
  const v = arg('runs') ?? process.env['BENCH_RUNS'];
  if (v === undefined) return 5;
  if (!/^[1-9][0-9]*$/.test(v)) throw new Error(`--runs must be a positive integer, got ${JSON.stringify(v)}`);
  return Number(v);
};

async function main(): Promise<void> {
  // A group that fails is reported and the others still run: one run of the whole bench is long.
  const failures: Record<string, string> = {};
  const group = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      failures[name] = (e as Error).stack ?? String(e);
      process.stderr.write(`bench group ${name} failed: ${failures[name]}\n`);
    }
  };
  const only = arg('only') ?? process.env['BENCH_ONLY'];
  if (only && !['sidecar', 'runtime', 'postgres', 'compare'].includes(only)) throw new Error(`--only must be sidecar, runtime, postgres or compare, got ${JSON.stringify(only)}`);
  const started = new Date();
  const lines: string[] = [];
  const result: Record<string, unknown> = {
    started: started.toISOString(),
    machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, mem_gb: Math.round(totalmem() / 2 ** 30), node: process.version },
  };
  if (!only || only === 'sidecar') await group('sidecar', async () => {
    const s = await benchSidecar({ killRuns: num('BENCH_KILL_RUNS', 5), execRuns: num('BENCH_EXEC_RUNS', 20) });
    result['sidecar'] = s;
    lines.push(
      `postmaster kill -9 -> accepting connections: median ${s.postmaster_kill9_to_accepting_ms.median} ms, max ${s.postmaster_kill9_to_accepting_ms.max} ms (goal median <= 1500 ms)`,
      `sidecar RSS with Postgres running: ${s.sidecar_rss_mb_with_postgres.value} MB (goal <= 60 MB); after the exec runs: ${s.sidecar_rss_mb_after_exec_runs.value} MB`,
      `exec true round trip: median ${s.exec_true_round_trip_ms.median} ms, max ${s.exec_true_round_trip_ms.max} ms (goal median <= 50 ms)`,
    );
  });
  if (!only || only === 'runtime') await group('runtime', async () => {
    const r = await benchRuntime({ failoverRuns: num('BENCH_FAILOVER_RUNS', 5), configRuns: num('BENCH_CONFIG_RUNS', 5) });
    result['runtime'] = r;
    lines.push(
      `leader failover after kill -9 of the leader unit: median ${r.leader_failover_after_kill9_ms.median} ms (leader-elected running: ${r.leader_elected_handled_after_kill9_ms.median} ms)`,
      `charm.yaml edit -> config-changed on all units: median ${r.charm_yaml_edit_to_config_changed_all_units_ms.median} ms`,
    );
  });
  if (!only || only === 'postgres') await group('postgres', async () => {
    const p = await benchPostgres();
    result['postgres'] = p;
    lines.push(
      `reload-class change applied on all units: median ${p.reload_change_applied_all_units_ms.median} ms (goal <= 1000 ms)`,
      `switchover, longest write gap: median ${p.switchover_longest_write_gap_ms.median} ms, writes lost: ${p.switchover_longest_write_gap_ms.acknowledged_writes_lost}`,
      `rolling restart, longest write gap: ${p.rolling_restart_longest_write_gap_ms.value} ms (goal <= 2000 ms), writes lost: ${p.rolling_restart_longest_write_gap_ms.acknowledged_writes_lost}`,
    );
  });
  if (!only || only === 'compare') await group('compare', async () => {
    const systems = (arg('systems') ?? process.env['BENCH_SYSTEMS'] ?? 'pgcharm,patroni-defaults,patroni-tuned').split(',').map((x) => x.trim());
    const n = runs();
    const c = await compare({ systems, failoverRuns: n, crashRuns: n, bootstrapRuns: num('BENCH_COMPARE_BOOTSTRAP_RUNS', 3), outDir: '.bench', log: (x) => process.stderr.write(`  ${x}\n`) });
    result['compare'] = c;
    lines.push('', 'side by side (median / max of the runs, ms; lost = acknowledged writes lost in all runs):', ...compareTable(c.systems), '');
    for (const [system, f] of Object.entries(c.systems)) {
      const t = f.bootstrap_timeline_ms?.median;
      if (t) lines.push(`${system} bootstrap, median ms from deploy start: ${Object.entries(t).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    }
    for (const [k, v] of Object.entries(c.ratios)) lines.push(`${k}: ${Object.entries(v).map(([m, r]) => `${m} x${r}`).join(', ')}`);
    lines.push(`timelines: ${c.pictures.join(', ')}`);
    for (const [system, e] of Object.entries(c.failed ?? {})) lines.push(`${system} FAILED: ${e}`);
    if (c.failed) failures['compare'] = `failed: ${Object.keys(c.failed).join(', ')}`;
  });
  if (Object.keys(failures).length) result['failed'] = failures;
  const json = JSON.stringify(result, null, 2) + '\n';
  process.stdout.write(json);
  mkdirSync('.bench', { recursive: true });
  writeFileSync('.bench/latest.json', json);
  process.stderr.write(lines.join('\n') + '\n');
  if (Object.keys(failures).length) {
    process.stderr.write(`failed: ${Object.entries(failures).map(([g, e]) => `${g}: ${e}`).join('; ')}\n`);
    process.exitCode = 1;
  }
}


function compareTable(systems: Record<string, SystemFigures>): string[] {
  const names = Object.keys(systems);
  const mm = (x: { median: number; max: number }) => `${Math.round(x.median)} / ${Math.round(x.max)}`;
  const rows: string[][] = [
    ['', ...names],
    ['kill -9 primary node -> first acked write on the new primary', ...names.map((n) => mm(systems[n]!.failover_kill9_primary_node_to_first_acked_write_ms))],
    ['  acknowledged writes lost', ...names.map((n) => String(systems[n]!.failover_acknowledged_writes_lost.total))],
    ['  killed node started again -> streaming', ...names.map((n) => mm(systems[n]!.failover_killed_node_streaming_again_ms))],
    ['kill -9 postmaster -> writes again', ...names.map((n) => mm(systems[n]!.postmaster_kill9_to_first_acked_write_ms))],
    ['  acknowledged writes lost', ...names.map((n) => String(systems[n]!.postmaster_crash_acknowledged_writes_lost.total))],
    ['bootstrap 3 nodes -> standbys streaming', ...names.map((n) => mm(systems[n]!.bootstrap_3_nodes_to_standbys_streaming_ms))],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
