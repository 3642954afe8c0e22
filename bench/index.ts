#!/usr/bin/env node
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { compare, type SystemFigures } from './compare.js';
import { benchBackup } from './backup.js';
import { benchMonitoring } from './monitoring.js';
import { benchFootprint, footprintSummary, footprintTable } from './footprint.js';
import { benchSaturation } from './saturation.js';
import { benchScale } from './scale.js';
import { benchPostgres } from './postgres.js';
import { benchRelations } from './relations.js';
import { benchRuntime } from './runtime.js';
import { benchSidecar } from './sidecar.js';

/**
 * `npm run bench`: JSON on stdout (`npm run -s bench` leaves out npm's banners) and in
 * .bench/latest.json, a human summary on stderr, failover timelines as .bench/failover-run-N.svg.
 * `npm run bench -- --only compare --runs 3 --systems pgcharm,patroni-tuned` narrows it down
 * (or BENCH_ONLY=sidecar|runtime|postgres|compare, BENCH_RUNS, BENCH_SYSTEMS). The footprint
 * groups of issue 13 run only when asked for by name: `--only footprint [--seconds 60]`,
 * `--only scale [--runs 3] [--seconds 60] [--clusters 10]`, `--only saturation [--minutes 10]`;
 * issue 14's `--only backup [--scale 70] [--seconds 60] [--writer-seconds 150]`; issue 15's
 * `--only monitoring [--scrapes 100] [--seconds 60]`; the database relation's
 * `--only relations [--runs 5]` (failover runs; 3 integrate runs).
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
/** A positive integer option (`--runs 3`), else `dflt`. */
const positive = (name: string, dflt: number, env?: string) => {
  const v = arg(name) ?? (env ? process.env[env] : undefined);
  if (v === undefined) return dflt;
  if (!/^[1-9][0-9]*$/.test(v)) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return Number(v);
};
const runs = (dflt = 5) => positive('runs', dflt, 'BENCH_RUNS');
const GROUPS = ['sidecar', 'runtime', 'postgres', 'compare', 'footprint', 'scale', 'saturation', 'backup', 'monitoring', 'relations'];
/** Long and only on request: not part of a plain `npm run bench`. */
const ON_REQUEST = ['footprint', 'scale', 'saturation', 'backup', 'monitoring', 'relations'];

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
  if (only && !GROUPS.includes(only)) throw new Error(`--only must be one of ${GROUPS.join(', ')}, got ${JSON.stringify(only)}`);
  const want = (g: string) => (only ? only === g : !ON_REQUEST.includes(g));
  const started = new Date();
  const lines: string[] = [];
  const result: Record<string, unknown> = {
    started: started.toISOString(),
    machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, mem_gb: Math.round(totalmem() / 2 ** 30), node: process.version },
  };
  if (want('sidecar')) await group('sidecar', async () => {
    const s = await benchSidecar({ killRuns: num('BENCH_KILL_RUNS', 5), execRuns: num('BENCH_EXEC_RUNS', 20) });
    result['sidecar'] = s;
    lines.push(
      `postmaster kill -9 -> accepting connections: median ${s.postmaster_kill9_to_accepting_ms.median} ms, max ${s.postmaster_kill9_to_accepting_ms.max} ms (goal median <= 1500 ms)`,
      `sidecar RSS with Postgres running: ${s.sidecar_rss_mb_with_postgres.value} MB (goal <= 60 MB); after the exec runs: ${s.sidecar_rss_mb_after_exec_runs.value} MB`,
      `exec true round trip: median ${s.exec_true_round_trip_ms.median} ms, max ${s.exec_true_round_trip_ms.max} ms (goal median <= 50 ms)`,
    );
  });
  if (want('runtime')) await group('runtime', async () => {
    const r = await benchRuntime({ failoverRuns: num('BENCH_FAILOVER_RUNS', 5), configRuns: num('BENCH_CONFIG_RUNS', 5) });
    result['runtime'] = r;
    lines.push(
      `leader failover after kill -9 of the leader unit: median ${r.leader_failover_after_kill9_ms.median} ms (leader-elected running: ${r.leader_elected_handled_after_kill9_ms.median} ms)`,
      `charm.yaml edit -> config-changed on all units: median ${r.charm_yaml_edit_to_config_changed_all_units_ms.median} ms`,
    );
  });
  if (want('postgres')) await group('postgres', async () => {
    const p = await benchPostgres();
    result['postgres'] = p;
    lines.push(
      `reload-class change applied on all units: median ${p.reload_change_applied_all_units_ms.median} ms (goal <= 1000 ms)`,
      `switchover, longest write gap: median ${p.switchover_longest_write_gap_ms.median} ms, writes lost: ${p.switchover_longest_write_gap_ms.acknowledged_writes_lost}`,
      `rolling restart, longest write gap: ${p.rolling_restart_longest_write_gap_ms.value} ms (goal <= 2000 ms), writes lost: ${p.rolling_restart_longest_write_gap_ms.acknowledged_writes_lost}`,
    );
  });
  if (want('compare')) await group('compare', async () => {
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
  if (want('footprint')) await group('footprint', async () => {
    const systems = (arg('systems') ?? process.env['BENCH_SYSTEMS'] ?? 'pgcharm,patroni-defaults,patroni-tuned').split(',').map((x) => x.trim());
    const f = await benchFootprint({ systems, seconds: positive('seconds', 60), quietSeconds: 15, log: (x) => process.stderr.write(`  ${x}\n`) });
    result['footprint'] = f;
    if (Object.keys(f.systems).length) lines.push('', `idle footprint, ${positive('seconds', 60)} s window (3 nodes each):`, ...footprintTable(f.systems), '');
    if (f.systems['pgcharm']) lines.push('pgcharm against the goals of issue 13:', ...footprintSummary(f.systems['pgcharm']).map((l) => `  ${l}`));
    for (const [system, e] of Object.entries(f.failed ?? {})) lines.push(`${system} FAILED: ${e}`);
    if (f.failed) failures['footprint'] = `failed: ${Object.keys(f.failed).join(', ')}`;
  });
  if (want('monitoring')) await group('monitoring', async () => {
    const mo = await benchMonitoring({ scrapes: positive('scrapes', 100), seconds: positive('seconds', 60), log: (x) => process.stderr.write(`  ${x}\n`) });
    result['monitoring'] = mo;
    lines.push('', 'monitoring (an idle 3-unit deployment):');
    for (const [name, e] of Object.entries(mo.endpoints)) {
      lines.push(`  ${name} scrape: ${e.cpu_ms_per_scrape_server} ms CPU in the server + ${e.cpu_ms_per_scrape_postgres} ms in Postgres, median ${e.latency_ms.median} ms, ${e.series} series, ${e.bytes} bytes`);
    }
    lines.push(`  postgres exporter: RSS ${mo.exporter.rss_mb.join(' / ')} MB (PSS ${mo.exporter.pss_mb.join(' / ')}), its Postgres connection PSS ${mo.exporter.connection_backend_pss_mb.join(' / ')} MB`);
    const d = mo.dashboard;
    lines.push(`  dashboard with a page open ${d.seconds} s: ${d.store_requests_per_second} store requests/s (${JSON.stringify(d.store_requests)}; ${d.watches} watches), ${d.snapshots} snapshots, ${d.cpu_ms_per_second_dashboard} ms/s CPU in the dashboard, ${d.cpu_ms_per_second_agents} ms/s in the 3 agents (${d.cpu_ms_per_second_agents_without_page} without a page), ${d.cpu_ms_per_second_postgres} ms/s in the 3 Postgres (${d.cpu_ms_per_second_postgres_without_page} without)`);
  });
  if (want('relations')) await group('relations', async () => {
    const r = await benchRelations({ integrateRuns: 3, failoverRuns: runs(5), log: (x) => process.stderr.write(`  ${x}\n`) });
    result['relations'] = r;
    const f = r.endpoints_changed_after_failover_ms;
    const mm = (x: { median: number; max: number }) => `median ${x.median} ms (max ${x.max})`;
    lines.push(
      '',
      'the database relation (todo app <-> 3-unit PostgreSQL):',
      `  integrate -> first write through the app: ${mm(r.integrate_to_first_query_ms)}`,
      `  kill -9 primary unit -> new primary Lease ${mm(f.new_primary_lease_ms)}, relation bag endpoints ${mm(f.bag_endpoints_ms)}, app's db-endpoints file ${mm(f.app_endpoints_file_ms)}`,
      `  app's longest write gap ${mm(f.write_gap_ms)}, acknowledged writes lost: ${f.acknowledged_writes_lost.total}`,
    );
  });
  if (want('scale')) await group('scale', async () => {
    const sc = await benchScale({ runs: runs(3), sizes: [5, 7], clusters: positive('clusters', 10), seconds: positive('seconds', 60), quietSeconds: 15, log: (x) => process.stderr.write(`  ${x}\n`) });
    result['scale'] = sc;
    for (const v of Object.values(sc.sizes)) {
      const boot = v.bootstrap_to_standbys_streaming_ms;
      const fo = v.failover_kill9_primary_unit_to_first_acked_write_ms;
      lines.push(`${v.units} units: bootstrap median ${boot.median} ms (max ${boot.max}); kill -9 primary -> first acked write median ${fo.median} ms (max ${fo.max}), ${v.failover_acknowledged_writes_lost.total} acknowledged writes lost`);
    }
    if (sc.apps) {
      const a = sc.apps;
      lines.push('', `idle footprint, one 3-unit application vs ${a.clusters} on one controller:`, ...footprintTable({ 'one app': a.one, [`${a.clusters} apps`]: a.many }));
      lines.push(`ratios (goal <= ${a.clusters}): ${Object.entries(a.ratios).map(([m, r]) => `${m} x${r}`).join(', ')}`);
      for (const e of [...(a.one.bootstrap_hook_errors ?? []), ...(a.many.bootstrap_hook_errors ?? [])]) lines.push(`while settling (the units got over it): ${e}`);
    }
    for (const [what, e] of Object.entries(sc.failed ?? {})) lines.push(`${what} FAILED: ${e}`);
    if (sc.failed) failures['scale'] = `failed: ${Object.keys(sc.failed).join(', ')}`;
  });
  if (want('saturation')) await group('saturation', async () => {
    const clients = 8;
    const s = await benchSaturation({ minutes: positive('minutes', 10), clients, threads: 2, log: (x) => process.stderr.write(`  ${x}\n`) });
    result['saturation'] = s;
    const p = s.pgcharm;
    lines.push(
      `saturation (${positive('minutes', 10)} min of pgbench + a busy loop per core): pgcharm ${p.pgbench.tps ?? 'n/a'} TPS, plain PostgreSQL ${s.plain.pgbench.tps ?? 'n/a'} TPS, ratio ${s.tps_ratio_pgcharm_over_plain ?? `n/a (${s.tps_ratio_note ?? 'no TPS'})`}`,
      `  ${s.goals.met ? 'met' : 'MISSED'} (goal 0 each): primary-lease changes ${p.lease_transitions}, fences ${p.fences}, failovers ${p.failovers}; step-downs ${p.step_downs}; primary ${p.primary_before} -> ${p.primary_after ?? 'no healthy cluster after the run'}`,
    );
    if (p.pgbench.exit_code !== 0) lines.push(`  pgbench against pgcharm exited ${p.pgbench.exit_code}, ${p.pgbench.aborted_clients} of ${clients} clients aborted: ${p.pgbench.errors[0] ?? ''}`);
    for (const l of p.fence_lines) lines.push(`  ${l}`);
    const warn = Object.entries(p.agent_warnings).sort((a, b) => b[1] - a[1]).slice(0, 5);
    if (warn.length) lines.push(`  agent warnings: ${warn.map(([k, n]) => `${n} x ${k}`).join('; ')}`);
  });
  if (want('backup')) await group('backup', async () => {
    const b = await benchBackup({ scale: positive('scale', 70), seconds: positive('seconds', 60), writerSeconds: positive('writer-seconds', 150), log: (x) => process.stderr.write(`  ${x}\n`) });
    result['backup'] = b;
    lines.push(
      `database ${b.database_mb} MB (pgbench scale ${positive('scale', 70)}):`,
      `  full backup (pgBackRest) ${b.full_backup.ms} ms, ${b.full_backup.mb_per_s} MB/s, ${b.full_backup.repository_mb} MB in the repository; pg_basebackup ${b.pg_basebackup.ms} ms, ${b.pg_basebackup.mb_per_s} MB/s; time ratio x${b.backup_time_ratio_pgbackrest_over_basebackup}`,
      `  restore of the 3-unit cluster (RTO): ${b.restore_cluster_rto_ms} ms`,
      `  pgbench TPS archiving on ${b.tps_archiving_on}, off ${b.tps_archiving_off}: ratio x${b.tps_ratio_on_over_off}`,
      `  total loss at archive_timeout ${b.total_loss.archive_timeout}: ${b.total_loss.acknowledged_rows_lost} of ${b.total_loss.writer_commits} acknowledged rows lost, window ${b.total_loss.data_loss_window_ms} ms; rebuilt 3 units from the repository in ${b.total_loss.rebuild_3_units_from_repository_ms} ms`,
    );
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
