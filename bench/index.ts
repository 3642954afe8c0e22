#!/usr/bin/env node
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { benchPostgres } from './postgres.js';
import { benchRuntime } from './runtime.js';
import { benchSidecar } from './sidecar.js';

/**
 * `npm run bench`: JSON on stdout (`npm run -s bench` leaves out npm's banners) and in
 * .bench/latest.json, a human summary on stderr. BENCH_ONLY=sidecar|runtime|postgres runs one group.
 */
const num = (name: string, dflt: number) => Number(process.env[name] ?? dflt);

async function main(): Promise<void> {
  const only = process.env['BENCH_ONLY'];
  const started = new Date();
  const lines: string[] = [];
  const result: Record<string, unknown> = {
    started: started.toISOString(),
    machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, mem_gb: Math.round(totalmem() / 2 ** 30), node: process.version },
  };
  if (!only || only === 'sidecar') {
    const s = await benchSidecar({ killRuns: num('BENCH_KILL_RUNS', 5), execRuns: num('BENCH_EXEC_RUNS', 20) });
    result['sidecar'] = s;
    lines.push(
      `postmaster kill -9 -> accepting connections: median ${s.postmaster_kill9_to_accepting_ms.median} ms, max ${s.postmaster_kill9_to_accepting_ms.max} ms (goal median <= 1500 ms)`,
      `sidecar RSS with Postgres running: ${s.sidecar_rss_mb_with_postgres.value} MB (goal <= 60 MB); after the exec runs: ${s.sidecar_rss_mb_after_exec_runs.value} MB`,
      `exec true round trip: median ${s.exec_true_round_trip_ms.median} ms, max ${s.exec_true_round_trip_ms.max} ms (goal median <= 50 ms)`,
    );
  }
  if (!only || only === 'runtime') {
    const r = await benchRuntime({ failoverRuns: num('BENCH_FAILOVER_RUNS', 5), configRuns: num('BENCH_CONFIG_RUNS', 5) });
    result['runtime'] = r;
    lines.push(
      `leader failover after kill -9 of the leader unit: median ${r.leader_failover_after_kill9_ms.median} ms (leader-elected running: ${r.leader_elected_handled_after_kill9_ms.median} ms)`,
      `charm.yaml edit -> config-changed on all units: median ${r.charm_yaml_edit_to_config_changed_all_units_ms.median} ms`,
    );
  }
  if (!only || only === 'postgres') {
    const p = await benchPostgres({ bootstrapRuns: num('BENCH_BOOTSTRAP_RUNS', 3), failoverRuns: num('BENCH_PG_FAILOVER_RUNS', 5) });
    result['postgres'] = p;
    lines.push(
      `unplanned failover (kill -9 primary unit -> first acked write): median ${p.failover_kill9_primary_unit_to_first_acked_write_ms.median} ms, max ${p.failover_kill9_primary_unit_to_first_acked_write_ms.max} ms (goal <= 3000 ms); acknowledged writes lost: ${p.failover_acknowledged_writes_lost.total}`,
      `bootstrap 3 units -> both standbys streaming: median ${p.bootstrap_3_units_to_standbys_streaming_ms.median} ms (goal <= 4000 ms)`,
      `reload-class change applied on all units: median ${p.reload_change_applied_all_units_ms?.median} ms (goal <= 1000 ms)`,
      `switchover, longest write gap: median ${p.switchover_longest_write_gap_ms?.median} ms, writes lost: ${p.switchover_longest_write_gap_ms?.acknowledged_writes_lost}`,
      `rolling restart, longest write gap: ${p.rolling_restart_longest_write_gap_ms?.value} ms (goal <= 2000 ms), writes lost: ${p.rolling_restart_longest_write_gap_ms?.acknowledged_writes_lost}`,
    );
  }
  const json = JSON.stringify(result, null, 2) + '\n';
  process.stdout.write(json);
  mkdirSync('.bench', { recursive: true });
  writeFileSync('.bench/latest.json', json);
  process.stderr.write(lines.join('\n') + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
