#!/usr/bin/env node
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { benchSidecar } from './sidecar.js';

/**
 * `npm run bench`: JSON on stdout (`npm run -s bench` leaves out npm's banners) and in
 * .bench/latest.json, a human summary on stderr.
 */
async function main(): Promise<void> {
  const killRuns = Number(process.env['BENCH_KILL_RUNS'] ?? 5);
  const execRuns = Number(process.env['BENCH_EXEC_RUNS'] ?? 20);
  const started = new Date();
  const sidecar = await benchSidecar({ killRuns, execRuns });
  const result = {
    started: started.toISOString(),
    machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, mem_gb: Math.round(totalmem() / 2 ** 30), node: process.version },
    sidecar,
  };
  const json = JSON.stringify(result, null, 2) + '\n';
  process.stdout.write(json);
  mkdirSync('.bench', { recursive: true });
  writeFileSync('.bench/latest.json', json);
  const s = sidecar;
  process.stderr.write(
    [
      `postmaster kill -9 -> accepting connections: median ${s.postmaster_kill9_to_accepting_ms.median} ms, max ${s.postmaster_kill9_to_accepting_ms.max} ms (goal median <= 1500 ms)`,
      `sidecar RSS with Postgres running: ${s.sidecar_rss_mb_with_postgres.value} MB (goal <= 60 MB); after the exec runs: ${s.sidecar_rss_mb_after_exec_runs.value} MB`,
      `exec true round trip: median ${s.exec_true_round_trip_ms.median} ms, max ${s.exec_true_round_trip_ms.max} ms (goal median <= 50 ms)`,
    ].join('\n') + '\n',
  );
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
